"""Matched multi-frequency filter (MMF): the classical tSZ cluster detector (baseline).

Herranz et al. 2002 (ApJ 580, 610); Melin, Bartlett & Delabrouille 2006 (A&A 459, 341); the
Planck MMF1/MMF3 pipelines. On a flat patch with maps ``d_j`` (j = frequency band), a cluster of
integrated Compton parameter Y (Y5R500, arcmin^2) and size theta500 at x0 adds

    d_j(x) = Y * a_j * (b_j * t_theta)(x - x0),

with ``a_j`` the band-integrated tSZ response per unit y (map unit), ``b_j`` the beam (and pixel
window) and ``t_theta`` the projected Arnaud et al. (2010) GNFW profile truncated at 5 R500 and
normalised to unit integral (arcmin^-2). With F_theta(k) the DFT of that template and P(k) the
noise cross-power matrix (B x B per Fourier mode, estimated from the patch itself), the
filter is

    Psi_theta(k) = sigma_theta^2 P^-1(k) F_theta(k),
    sigma_theta^-2 = sum_k F_theta^T(k) P^-1(k) F_theta(k),

and the filtered map ``Y_hat(x) = sum_k Psi^T d~(k) e^{ik.x}`` is an unbiased estimate of Y with
standard deviation sigma_theta: S/N = Y_hat / sigma_theta.

Conventions: DFTs are numpy's unnormalised ``rfft2`` (the sums over k run over the full grid,
Hermitian halves counted twice); ``P(k) = E[n~(k) n~(k)^H]`` in the same convention (white noise
of variance s^2 per pixel: P = N s^2). Patches are ``patch[y, x]`` as in
:mod:`skydetect.geometry.projection`.

The tile-level driver :func:`run_tile` covers one HEALPix nside-2 tile with overlapping flat
patches centred on the pixel centres of a finer HEALPix grid (``nside_c``): each sky point
belongs to the patch of the ``nside_c`` pixel that contains it, which is far enough from the
patch edge to be free of apodisation effects. Detections are local maxima of the S/N over
position and theta500, de-duplicated across patches and kept if they lie in the tile.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import h5py
import healpy as hp
import numpy as np
from scipy import integrate, ndimage, special

from skydetect.geometry import projection, tiles
from skydetect.sky import physics
from skydetect.sky.instrument import channel

log = logging.getLogger(__name__)

__all__ = [
    "PROFILES",
    "MMFError",
    "MMFConfig",
    "PatchResult",
    "projected_profile",
    "profile_transform",
    "healpix_pixel_window",
    "beam_transfer",
    "fourier_grid",
    "apodisation_window",
    "estimate_noise_spectra",
    "white_noise_spectra",
    "filter_patch",
    "find_peaks",
    "required_margin_deg",
    "run_tile",
    "DETECTION_COLUMNS",
    "write_detections",
    "write_snr_map",
    "read_snr_map",
]

# --------------------------------------------------------------------------------- profile
# The GNFW profiles and their line-of-sight projection live in skydetect.sky.physics (the
# mock sky injects its clusters with the same functions).
PROFILES: dict[str, physics.GNFW] = {
    "arnaud10": physics.ARNAUD10,  # Arnaud et al. 2010 (A&A 517, A92), universal profile
    "planck_int_v": physics.PLANCK_INT_V,  # Planck Intermediate Results V (2013)
}


class MMFError(ValueError):
    """Bad MMF input or configuration (the message names the key or file)."""


def _profile_params(profile: str) -> physics.GNFW:
    try:
        return PROFILES[profile]
    except KeyError:
        raise MMFError(
            f"unknown pressure profile {profile!r} (clusters.mmf.profile): "
            f"expected one of {', '.join(PROFILES)}"
        ) from None


def _projected_table(profile: str, truncation: float):
    return physics.projected_profile(_profile_params(profile), float(truncation))


def projected_profile(u, profile: str = "arnaud10", truncation: float = 5.0) -> np.ndarray:
    """Line-of-sight projected GNFW profile at u = theta / theta500, truncated at
    ``truncation`` R500 (a sphere) and normalised to unit integral over the plane of u."""
    uu, ff = _projected_table(profile, float(truncation))
    u = np.asarray(u, dtype=float)
    return np.interp(u, uu, ff, right=0.0)


@lru_cache(maxsize=8)
def _transform_table(profile: str, truncation: float, kappa_max: float):
    # >= 8 samples per period of J0 at kappa_max; kappa steps well below G's 1/5 period
    u = np.linspace(0.0, truncation, int(8 * kappa_max * truncation) + 1)
    g = projected_profile(u, profile, truncation)
    kappa = np.linspace(0.0, kappa_max, int(40 * kappa_max) + 1)
    gk = np.empty_like(kappa)
    for s in range(0, len(kappa), 500):
        j0 = special.j0(2.0 * np.pi * kappa[s : s + 500, None] * u[None, :])
        gk[s : s + 500] = 2.0 * np.pi * integrate.trapezoid(j0 * (g * u)[None, :], u, axis=1)
    return kappa, gk / gk[0]


def profile_transform(q, theta500: float, profile: str = "arnaud10", truncation: float = 5.0):
    """Fourier transform T(q) of the unit-integral template of size ``theta500`` (arcmin) at
    spatial frequencies ``q`` (cycles per arcmin); T(0) = 1."""
    kappa = np.abs(np.asarray(q, dtype=float)) * float(theta500)
    kmax = float(2.0 ** np.ceil(np.log2(max(kappa.max(initial=0.0) * 1.01, 16.0))))
    kk, gk = _transform_table(profile, float(truncation), kmax)
    return np.interp(kappa, kk, gk)


def healpix_pixel_window(q, nside: int) -> np.ndarray:
    """Pixel window of HEALPix pixels at ``nside`` (spatial frequency ``q`` in cycles/arcmin).

    healpy's tabulated windows need a download, so a Gaussian in ell / nside is used,
    W = exp(-0.047 (ell / nside)^2), fitted to HEALPix's own pixel averaging (the power that
    ``ud_grade`` keeps; nside 64 and 128, ell <= 2 nside, residuals < 1 %). It is about 10 %
    wider than the window of a square pixel of the same area (HEALPix pixels are diamonds).
    """
    ell = 2.0 * np.pi * np.asarray(q, dtype=float) * (180.0 * 60.0 / np.pi)
    return np.exp(-0.047 * (ell / float(nside)) ** 2)


def beam_transfer(q, fwhm_arcmin: float, pixwin_nside: int | None = None) -> np.ndarray:
    """Gaussian beam transfer function at ``q`` (cycles/arcmin), times the HEALPix pixel
    window of ``pixwin_nside`` when given (the patches are sampled from HEALPix pixels)."""
    q = np.asarray(q, dtype=float)
    b = np.exp(-((np.pi * q * fwhm_arcmin) ** 2) / (4.0 * np.log(2.0)))
    if pixwin_nside:
        b = b * healpix_pixel_window(q, pixwin_nside)
    return b


def fourier_grid(size: int, pixel_arcmin: float):
    """(q, weight, kidx) on numpy's rfft2 grid of a ``size`` x ``size`` patch: spatial
    frequency |q| (cycles/arcmin), the Hermitian multiplicity (1 or 2) of each stored mode,
    and |k| in units of the fundamental mode."""
    fy = np.fft.fftfreq(size)
    fx = np.fft.rfftfreq(size)
    kidx = np.hypot(fy[:, None], fx[None, :]) * size
    q = kidx / (size * pixel_arcmin)
    w = np.full(fx.shape, 2.0)
    w[0] = 1.0
    if size % 2 == 0:
        w[-1] = 1.0
    weight = np.broadcast_to(w[None, :], kidx.shape).copy()
    return q, weight, kidx


def apodisation_window(size: int, width_px: int) -> np.ndarray:
    """Separable cosine (Tukey) taper: 1 in the interior, 0 -> 1 over ``width_px`` pixels."""
    w1 = np.ones(size)
    if width_px > 0:
        ramp = 0.5 * (1.0 - np.cos(np.pi * (np.arange(width_px) + 0.5) / width_px))
        w1[:width_px] = ramp
        w1[size - width_px :] = ramp[::-1]
    return np.outer(w1, w1)


def white_noise_spectra(sigmas, size: int) -> np.ndarray:
    """P(k) (size, size//2+1, B, B) of independent white noise with per-pixel ``sigmas``."""
    sig = np.asarray(sigmas, dtype=float)
    p = np.diag(sig**2) * size * size
    return np.broadcast_to(p, (size, size // 2 + 1, len(sig), len(sig))).copy()


@lru_cache(maxsize=8)
def _annuli(size: int, min_modes: int):
    """Annulus binning of the rfft2 grid of a ``size`` patch: integer |k| rings merged from low
    |k| until each holds ``min_modes`` modes. Returns (bin index per mode, mode weights (0 at
    k = 0), modes per bin, mean |k| per bin, the distinct |k| values of the grid, the index of
    their first mode, and the map grid -> distinct value)."""
    _, weight, kidx = fourier_grid(size, 1.0)
    r = np.floor(kidx + 0.5).astype(int).ravel()
    wt = weight.ravel()
    counts = np.bincount(r, weights=wt)
    edges = [1]
    acc = 0.0
    for ring in range(1, len(counts)):
        acc += counts[ring]
        if acc >= min_modes:
            edges.append(ring + 1)
            acc = 0.0
    if edges[-1] != len(counts):
        if len(edges) > 1:
            edges[-1] = len(counts)
        else:
            edges.append(len(counts))
    bin_of_ring = np.zeros(len(counts), dtype=int)
    for i in range(len(edges) - 1):
        bin_of_ring[edges[i] : edges[i + 1]] = i
    nbin = len(edges) - 1
    b = bin_of_ring[r]
    bw = np.where(r >= 1, wt, 0.0)  # exclude the mean (k = 0)
    nmodes = np.bincount(b, weights=bw, minlength=nbin)
    kcen = np.bincount(b, weights=bw * kidx.ravel(), minlength=nbin) / nmodes
    k2 = np.rint(kidx.ravel() ** 2).astype(np.int64)  # iy^2 + ix^2, exact
    k2u, first, inv = np.unique(k2, return_index=True, return_inverse=True)
    return b, bw, nmodes, kcen, np.sqrt(k2u), first, inv.ravel()


def _spectra_on_distinct_k(ft, window, min_modes: int, smooth_bins: int) -> np.ndarray:
    """Azimuthally averaged, smoothed cross-spectra (U, B, B) at the distinct |k| of the grid."""
    nb, size = ft.shape[0], ft.shape[1]
    norm = size * size / float(np.sum(np.asarray(window) ** 2))
    b, bw, nmodes, kcen, ku, _, _ = _annuli(size, int(min_modes))
    nbin = len(nmodes)
    f2 = ft.reshape(nb, -1)
    spec = np.empty((nbin, nb, nb))
    for i in range(nb):
        for j in range(i, nb):
            cij = np.real(f2[i] * np.conj(f2[j])) * norm
            spec[:, i, j] = spec[:, j, i] = (
                np.bincount(b, weights=bw * cij, minlength=nbin) / nmodes
            )
    if smooth_bins > 1 and nbin > smooth_bins:
        wsum = ndimage.uniform_filter1d(nmodes, smooth_bins, mode="nearest")
        spec = (
            ndimage.uniform_filter1d(
                spec * nmodes[:, None, None], smooth_bins, axis=0, mode="nearest"
            )
            / wsum[:, None, None]
        )
    out = np.empty((ku.size, nb, nb))
    for i in range(nb):
        for j in range(i, nb):
            out[:, i, j] = out[:, j, i] = np.interp(ku, kcen, spec[:, i, j])
    return out


def estimate_noise_spectra(
    maps, window, min_modes: int = 50, smooth_bins: int = 3, ft=None
) -> np.ndarray:
    """Noise cross-power spectra P(k) (S, S//2+1, B, B) estimated from the maps themselves.

    The mean-subtracted maps (B, S, S) are multiplied by ``window`` (apodisation times valid
    pixels), Fourier transformed, and the cross-spectra averaged over annuli in |k| (merged at
    low |k| until each annulus holds ``min_modes`` modes), smoothed over ``smooth_bins``
    neighbouring annuli, and interpolated back to every mode. The normalisation N / sum(w^2)
    undoes the power lost to the window, so white noise of variance s^2 gives P = N s^2.
    """
    maps = np.asarray(maps, dtype=float)
    nb, size, _ = maps.shape
    if ft is None:
        ft = _windowed_ft(maps, window)
    inv = _annuli(size, int(min_modes))[-1]
    p = _spectra_on_distinct_k(ft, window, min_modes, smooth_bins)
    return p[inv].reshape(size, size // 2 + 1, nb, nb)


def _windowed_ft(maps, window):
    w = np.asarray(window, dtype=float)
    mean = np.sum(maps * w, axis=(1, 2), keepdims=True) / np.sum(w)
    return np.fft.rfft2((maps - mean) * w, axes=(1, 2))


@dataclass
class PatchResult:
    """MMF output of one patch: S/N and Y5R500 (arcmin^2) maps per theta500, and sigma."""

    theta500: np.ndarray  # (T,) arcmin
    snr: np.ndarray  # (T, S, S)
    y: np.ndarray  # (T, S, S) arcmin^2
    sigma: np.ndarray  # (T,) arcmin^2 (1-sigma error on Y)


def filter_patch(
    maps,
    pixel_arcmin: float,
    fwhm_arcmin,
    tsz_per_y,
    theta500,
    window=None,
    noise_ps=None,
    pixwin_nside: int | None = None,
    profile: str = "arnaud10",
    truncation: float = 5.0,
    min_modes: int = 50,
    smooth_bins: int = 3,
    subtract_snr: float | None = 10.0,
) -> PatchResult:
    """Run the MMF on one flat patch.

    ``maps`` (B, S, S) in map units; ``fwhm_arcmin``, ``tsz_per_y`` (B,) per band; ``theta500``
    (T,) arcmin; ``window`` (S, S) apodisation x valid-pixel weight (default: none);
    ``noise_ps`` (S, S//2+1, B, B) a known noise spectrum (default: estimated from the maps,
    see :func:`estimate_noise_spectra`); ``subtract_snr``: with an estimated spectrum, clusters
    found at S/N >= this in a first pass are subtracted before the spectrum is estimated again
    (None or 0: a single pass).
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3 or maps.shape[1] != maps.shape[2]:
        raise MMFError(f"maps must be (bands, S, S), got {maps.shape}")
    nb, size, _ = maps.shape
    fwhm = np.asarray(fwhm_arcmin, dtype=float)
    tsz = np.asarray(tsz_per_y, dtype=float)
    if fwhm.shape != (nb,) or tsz.shape != (nb,):
        raise MMFError(
            f"need one beam and one tSZ factor per band ({nb}), got {fwhm.shape}, {tsz.shape}"
        )
    thetas = np.atleast_1d(np.asarray(theta500, dtype=float))
    if window is None:
        window = np.ones((size, size))
    # work in units of each band's rms (numerically better conditioned; cancels exactly)
    scale = np.sqrt(np.sum((maps * window) ** 2, axis=(1, 2)) / np.sum(window**2))
    scale = np.where(scale > 0, scale, 1.0)
    x = maps / scale[:, None, None]
    a = tsz / scale
    ft = _windowed_ft(x, window)
    if noise_ps is None:  # isotropic: solved at the distinct |k| of the grid only
        p = _spectra_on_distinct_k(ft, window, min_modes, smooth_bins)
    else:
        p = np.asarray(noise_ps, dtype=float) / np.outer(scale, scale)
    weight, kidx, beams, taus = _fourier_setup(
        size, float(pixel_arcmin), tuple(fwhm), tuple(thetas), pixwin_nside, profile, truncation
    )
    ab = a[:, None, None] * beams / pixel_arcmin**2  # tSZ x beam per unit Y, per mode
    res = _apply_filter(ft, p, ab, taus, weight, kidx == 0, thetas, min_modes)
    if noise_ps is None and subtract_snr:
        # The clusters themselves inflate the spectrum estimated from the data (and bias
        # their own S/N low by ~ (S/N)^2 / number of signal modes): subtract the best-fit
        # templates of the bright ones and estimate the spectrum again (as MMF3 does).
        peaks = find_peaks(res, subtract_snr, footprint=5)
        if peaks:
            model = np.zeros_like(x)
            ky = np.fft.fftfreq(size)[:, None]
            kx = np.fft.rfftfreq(size)[None, :]
            for pk in peaks:
                phase = np.exp(-2j * np.pi * (ky * pk.y + kx * pk.x))
                model += np.fft.irfft2(pk.yval * ab * taus[pk.itheta] * phase, s=(size, size))
            p = _spectra_on_distinct_k(
                _windowed_ft(x - model, window), window, min_modes, smooth_bins
            )
            res = _apply_filter(ft, p, ab, taus, weight, kidx == 0, thetas, min_modes)
    return res


@lru_cache(maxsize=4)
def _fourier_setup(size, pixel_arcmin, fwhm, thetas, pixwin_nside, profile, truncation):
    """Mode weights, |k|, beam transfer (B, S, S/2+1) and profile transforms per theta500,
    shared by every patch of the same geometry."""
    q, weight, kidx = fourier_grid(size, pixel_arcmin)
    beams = np.stack([beam_transfer(q, f, pixwin_nside) for f in fwhm])
    taus = [profile_transform(q, th, profile, truncation) for th in thetas]
    return weight, kidx, beams, taus


def _apply_filter(ft, p, ab, taus, weight, dc, thetas, min_modes) -> PatchResult:
    """Filter with spectrum ``p``: (S, S/2+1, B, B) per mode, or (U, B, B) at the distinct
    |k| of the grid (an isotropic spectrum; beams and profiles are isotropic too)."""
    nb, size = ft.shape[0], ft.shape[1]
    ridge = 1e-9 * np.trace(p, axis1=-2, axis2=-1)[..., None, None] / nb
    # P^-1 (a b) once (regularised, mode by mode); the profile is a scalar factor per mode
    if p.ndim == 3:
        *_, first, inv = _annuli(size, int(min_modes))
        rhs = ab.reshape(nb, -1)[:, first].T[..., None]  # (U, B, 1)
        sol = np.linalg.solve(p + ridge * np.eye(nb), rhs)[..., 0]  # (U, B)
        pinv_ab = sol.T[:, inv].reshape(ab.shape)
    else:
        rhs = np.moveaxis(ab, 0, -1)[..., None]  # (S, S/2+1, B, 1)
        pinv_ab = np.moveaxis(np.linalg.solve(p + ridge * np.eye(nb), rhs)[..., 0], -1, 0)
    abpab = np.sum(ab * pinv_ab, axis=0)  # (S, S/2+1) real
    abpd = np.sum(pinv_ab * ft, axis=0)  # (S, S/2+1) complex; P symmetric
    abpab[dc] = 0.0
    abpd[dc] = 0.0
    n = size * size
    snr = np.empty((len(thetas), size, size), dtype=np.float32)
    yhat = np.empty_like(snr)
    sigma = np.empty(len(thetas))
    for it, (th, tau) in enumerate(zip(thetas, taus, strict=True)):
        norm = float(np.sum(weight * tau**2 * abpab))
        if not norm > 0:
            raise MMFError(f"filter normalisation is {norm} for theta500={th}")
        s2 = 1.0 / norm
        yy = n * s2 * np.fft.irfft2(tau * abpd, s=(size, size))
        sigma[it] = np.sqrt(s2)
        yhat[it] = yy
        snr[it] = yy / sigma[it]
    return PatchResult(theta500=np.asarray(thetas), snr=snr, y=yhat, sigma=sigma)


# --------------------------------------------------------------------------------- peaks
@dataclass
class Peak:
    y: float  # fractional row
    x: float  # fractional column
    itheta: int
    snr: float
    yval: float
    npix: int  # pixels of the connected region above threshold


def _parabolic(lo: float, mid: float, hi: float) -> float:
    """Sub-pixel offset (within +-0.5) of the maximum of a 3-point parabola."""
    den = lo - 2.0 * mid + hi
    return float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5)) if den < 0 else 0.0


def find_peaks(
    result: PatchResult, threshold: float, accept=None, footprint: int = 5
) -> list[Peak]:
    """Local maxima of the S/N over position and theta500 at S/N >= ``threshold``.

    The max over theta500 of the S/N cube is searched for 2-D local maxima (``footprint``
    pixels wide); the best theta500 is the argmax at the peak. ``accept`` (S, S) bool limits
    where peaks count (patch interior). Positions are refined by a 3-point parabola per axis.
    """
    smax = result.snr.max(axis=0)
    ibest = result.snr.argmax(axis=0)
    above = smax >= threshold
    if not above.any():
        return []
    locmax = (smax == ndimage.maximum_filter(smax, size=footprint, mode="nearest")) & above
    if accept is not None:
        locmax &= accept
    labels, _ = ndimage.label(above)
    sizes = np.bincount(labels.ravel())
    s = smax.shape[0]
    peaks = []
    for yy, xx in zip(*np.nonzero(locmax), strict=True):
        dy = _parabolic(*smax[yy - 1 : yy + 2, xx]) if 0 < yy < s - 1 else 0.0
        dx = _parabolic(*smax[yy, xx - 1 : xx + 2]) if 0 < xx < s - 1 else 0.0
        it = int(ibest[yy, xx])
        peaks.append(
            Peak(
                y=yy + dy,
                x=xx + dx,
                itheta=it,
                snr=float(smax[yy, xx]),
                yval=float(result.y[it, yy, xx]),
                npix=int(sizes[labels[yy, xx]]),
            )
        )
    return peaks


# --------------------------------------------------------------------------------- tile
@dataclass
class MMFConfig:
    """The ``clusters.mmf`` settings (see config/schema.yaml for their meaning)."""

    bands: list[str]
    theta500_arcmin: list[float] = field(
        default_factory=lambda: [1.0, 1.4, 1.9, 2.5, 3.4, 4.5, 6.1, 8.2, 11.1, 15.0]
    )
    snr_threshold: float = 4.5
    patch_size: int = 128
    pixel_arcmin: float = 1.7
    apodisation_px: int = 12
    pixel_window: bool = True
    profile: str = "arnaud10"
    truncation_r500: float = 5.0
    spectrum_min_modes: int = 50
    spectrum_smooth_bins: int = 3
    subtract_snr: float | None = 10.0
    dedup_radius_arcmin: float = 5.0
    peak_footprint_px: int = 5
    max_invalid_fraction: float = 0.5

    @classmethod
    def from_config(cls, mmf: dict, planck_bands) -> MMFConfig:
        kw = {k: v for k, v in mmf.items() if k in cls.__dataclass_fields__ and k != "bands"}
        freq = [str(b) for b in planck_bands if str(b) != "y"]
        bands = mmf.get("bands") or freq
        bands = [str(b) for b in bands]
        bad = [b for b in bands if b == "y" or b not in freq]
        if bad:
            raise MMFError(
                f"clusters.mmf.bands {bad}: the MMF uses frequency bands present in planck.bands "
                f"({freq})"
            )
        if len(bands) < 1:
            raise MMFError("clusters.mmf.bands: no frequency band to filter")
        return cls(bands=bands, **kw)

    def validate(self) -> None:
        if not self.theta500_arcmin or min(self.theta500_arcmin) <= 0:
            raise MMFError(
                "clusters.mmf.theta500_arcmin must be a non-empty list of positive sizes"
            )
        _profile_params(self.profile)


def centre_nside(cfg: MMFConfig, nside_max: int = 1024) -> int:
    """The coarsest HEALPix grid whose pixels fit in the patch interior (patch half-width
    minus the apodisation border and a 2-pixel guard): patch centres sit on its pixels."""
    half = (cfg.patch_size / 2 - cfg.apodisation_px - 2) * cfg.pixel_arcmin / 60.0
    nc = tiles.TILE_NSIDE
    while np.degrees(hp.max_pixrad(nc)) > half:
        nc *= 2
        if nc > nside_max:
            raise MMFError(
                f"clusters.mmf.patch_size {cfg.patch_size} too small for its apodisation border "
                f"({cfg.apodisation_px} px)"
            )
    return nc


def required_margin_deg(cfg: MMFConfig, nside: int) -> float:
    """Tile margin (deg) the MMF patches need to lie entirely inside a tile file: their
    centres lie inside the tile, so the half-diagonal of a patch plus one map pixel."""
    half_diag = np.sqrt(2.0) * cfg.patch_size / 2.0 * cfg.pixel_arcmin / 60.0
    return float(half_diag + np.degrees(hp.max_pixrad(int(nside))))


def _sample(tile: tiles.Tile, data, vec):
    """Patch values (S, S, B) of ``data`` (P, B) (the tile's maps) at unit vectors (S, S, 3),
    nearest HEALPix pixel, tolerant of pixels outside the tile file or NaN / UNSEEN
    (returned as 0 with valid = False).

    Nearest-pixel sampling, not interpolation: an interpolated map has a noise spectrum that
    falls steeply within each map pixel, and the filter's S/N is then mis-calibrated
    (measured: S/N rms 1.37 instead of 1 with bilinear sampling at 2x oversampling).
    """
    shape = vec.shape[:-1]
    v = vec.reshape(-1, 3)
    pix = hp.vec2pix(tile.nside, v[:, 0], v[:, 1], v[:, 2])
    idx = np.clip(np.searchsorted(tile.pixels, pix), 0, len(tile.pixels) - 1)
    found = tile.pixels[idx] == pix
    vals = data[idx]  # (M, B)
    good = found[:, None] & np.isfinite(vals) & (vals != hp.UNSEEN)
    vals = np.where(good, vals, 0.0)
    valid = good.all(axis=1)
    return vals.reshape(*shape, data.shape[1]), valid.reshape(shape)


@dataclass
class TileResult:
    detections: list[dict]
    pixels: np.ndarray  # (P,) RING pixels of the tile (no margin)
    snr: np.ndarray  # (T, P) float32
    y: np.ndarray  # (T, P) float32
    theta500: np.ndarray  # (T,)
    centres: np.ndarray  # (C, 2) glon, glat of the patch centres
    sigma: np.ndarray  # (C, T) per patch
    invalid_fraction: float
    nside_centres: int


def run_tile(tile: tiles.Tile, cfg: MMFConfig, progress: bool = False) -> TileResult:
    """Run the MMF over one tile (with its margin) and return detections and S/N maps."""
    cfg.validate()
    missing = [b for b in cfg.bands if b not in tile.maps]
    if missing:
        raise MMFError(f"band(s) {missing} absent from tile file {tile.path} (it has {tile.bands})")
    nside = tile.nside
    thetas = np.asarray(cfg.theta500_arcmin, dtype=float)
    fwhm = [channel(b).fwhm_arcmin for b in cfg.bands]
    tsz = [channel(b).tsz_per_y for b in cfg.bands]
    nc = centre_nside(cfg)
    centres_pix = tiles.tile_pixels(nc, tile.tile)
    clon, clat = hp.pix2ang(nc, centres_pix, lonlat=True)
    accept_r = np.degrees(hp.max_pixrad(nc)) + 2 * cfg.pixel_arcmin / 60.0
    # tile pixels (no margin) and the patch each belongs to
    tpix = tile.pixels[tile.in_tile]
    tlon, tlat = hp.pix2ang(nside, tpix, lonlat=True)
    owner = np.searchsorted(centres_pix, hp.ang2pix(nc, tlon, tlat, lonlat=True))
    snr_hp = np.full((len(thetas), len(tpix)), np.nan, dtype=np.float32)
    y_hp = np.full_like(snr_hp, np.nan)
    sigmas = np.full((len(centres_pix), len(thetas)), np.nan)
    data = np.stack([tile.maps[b] for b in cfg.bands], axis=-1)  # (P, B)
    size = cfg.patch_size
    apod = apodisation_window(size, cfg.apodisation_px)
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    rad_px = np.hypot(yy - c, xx - c) * cfg.pixel_arcmin / 60.0
    accept = rad_px <= accept_r
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(len(centres_pix) + 1))
    candidates = []
    n_invalid = 0
    it = range(len(centres_pix))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"MMF tile {tile.tile}", unit="patch", mininterval=5.0)
    for ic in it:
        vec = projection.patch_vectors(clon[ic], clat[ic], size, cfg.pixel_arcmin)
        vals, valid = _sample(tile, data, vec)
        bad = ~valid
        n_invalid += int(bad.sum())
        if bad.mean() > cfg.max_invalid_fraction:
            log.warning(
                "patch at l=%.2f b=%.2f: %.0f %% of pixels outside the tile file or invalid; skipped",
                clon[ic],
                clat[ic],
                100 * bad.mean(),
            )
            continue
        maps = np.moveaxis(vals, -1, 0)
        res = filter_patch(
            maps,
            cfg.pixel_arcmin,
            fwhm,
            tsz,
            thetas,
            window=apod * valid,
            pixwin_nside=nside if cfg.pixel_window else None,
            profile=cfg.profile,
            truncation=cfg.truncation_r500,
            min_modes=cfg.spectrum_min_modes,
            smooth_bins=cfg.spectrum_smooth_bins,
            subtract_snr=cfg.subtract_snr,
        )
        sigmas[ic] = res.sigma
        for pk in find_peaks(res, cfg.snr_threshold, accept & valid, cfg.peak_footprint_px):
            lon, lat = _patch_to_lonlat(clon[ic], clat[ic], pk.x, pk.y, size, cfg.pixel_arcmin)
            candidates.append(
                {
                    "GLON": lon,
                    "GLAT": lat,
                    "SNR": pk.snr,
                    "THETA500": float(thetas[pk.itheta]),
                    "Y5R500": pk.yval,
                    "NPIX": pk.npix,
                }
            )
        sel = order[bounds[ic] : bounds[ic + 1]]
        if sel.size:
            px, py = projection.lonlat_to_patch(
                tlon[sel], tlat[sel], clon[ic], clat[ic], size, cfg.pixel_arcmin
            )
            ix = np.clip(np.rint(px).astype(int), 0, size - 1)
            iy = np.clip(np.rint(py).astype(int), 0, size - 1)
            snr_hp[:, sel] = res.snr[:, iy, ix]
            y_hp[:, sel] = res.y[:, iy, ix]
    # peaks closer than two patch pixels are not resolved from one another
    dets = _deduplicate(candidates, max(cfg.dedup_radius_arcmin, 2.0 * cfg.pixel_arcmin))
    keep = []
    for d in dets:
        if int(tiles.tile_of(d["GLON"], d["GLAT"])) == tile.tile:
            d["TILE"] = tile.tile
            d["AREA_ARCMIN2"] = d["NPIX"] * cfg.pixel_arcmin**2
            d["RADIUS_ARCMIN"] = float(np.sqrt(d["AREA_ARCMIN2"] / np.pi))
            keep.append(d)
    frac = n_invalid / float(len(centres_pix) * size * size)
    return TileResult(
        detections=keep,
        pixels=tpix,
        snr=snr_hp,
        y=y_hp,
        theta500=thetas,
        centres=np.stack([clon, clat], axis=1),
        sigma=sigmas,
        invalid_fraction=frac,
        nside_centres=nc,
    )


def _patch_to_lonlat(glon, glat, x, y, size, pixel_arcmin):
    """Sky position of fractional pixel (x, y) of an unrotated patch (inverse of
    :func:`projection.lonlat_to_patch` with angle 0, no flip: xi = -(x - c), eta = y - c)."""
    c = (size - 1) / 2.0
    step = pixel_arcmin / 60.0
    lon, lat = projection.offset_lonlat(glon, glat, -(x - c) * step, (y - c) * step)
    return float(lon), float(lat)


def _deduplicate(cands: list[dict], radius_arcmin: float) -> list[dict]:
    """One detection per cluster: greedy by S/N, dropping any weaker candidate closer than
    max(``radius_arcmin``, theta500 of the stronger one)."""
    if not cands:
        return []
    cands = sorted(cands, key=lambda d: -d["SNR"])
    vec = projection.lonlat_to_vec([d["GLON"] for d in cands], [d["GLAT"] for d in cands])
    alive = np.ones(len(cands), dtype=bool)
    out = []
    for i, d in enumerate(cands):
        if not alive[i]:
            continue
        out.append(d)
        r = np.radians(max(radius_arcmin, d["THETA500"]) / 60.0)
        close = vec @ vec[i] >= np.cos(r)
        alive &= ~close
    return out


# --------------------------------------------------------------------------------- files
# Same columns as the U-Net detections (docs/dataflow.md), plus SNR THETA500 Y5R500.
# PEAK_PROB / MEAN_PROB are NaN for the MMF (it gives a S/N, not a probability); AREA_ARCMIN2
# and NPIX describe the connected region of max-over-theta S/N >= threshold around the peak
# (patch pixels), RADIUS_ARCMIN = sqrt(AREA_ARCMIN2 / pi).
DETECTION_COLUMNS = [
    ("GLON", "deg"),
    ("GLAT", "deg"),
    ("RA", "deg"),
    ("DEC", "deg"),
    ("PEAK_PROB", None),
    ("MEAN_PROB", None),
    ("AREA_ARCMIN2", "arcmin2"),
    ("RADIUS_ARCMIN", "arcmin"),
    ("NPIX", None),
    ("TILE", None),
    ("SNR", None),
    ("THETA500", "arcmin"),
    ("Y5R500", "arcmin2"),
]


def detections_table(dets: list[dict], meta: dict | None = None):
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    dets = sorted(dets, key=lambda d: -d["SNR"])
    glon = np.array([d["GLON"] for d in dets], dtype=float)
    glat = np.array([d["GLAT"] for d in dets], dtype=float)
    icrs = SkyCoord(l=glon * u.deg, b=glat * u.deg, frame="galactic").icrs
    cols = {
        "GLON": glon,
        "GLAT": glat,
        "RA": icrs.ra.deg,
        "DEC": icrs.dec.deg,
        "PEAK_PROB": np.full(len(dets), np.nan),
        "MEAN_PROB": np.full(len(dets), np.nan),
        "AREA_ARCMIN2": np.array([d["AREA_ARCMIN2"] for d in dets], dtype=float),
        "RADIUS_ARCMIN": np.array([d["RADIUS_ARCMIN"] for d in dets], dtype=float),
        "NPIX": np.array([d["NPIX"] for d in dets], dtype=np.int64),
        "TILE": np.array([d["TILE"] for d in dets], dtype=np.int64),
        "SNR": np.array([d["SNR"] for d in dets], dtype=float),
        "THETA500": np.array([d["THETA500"] for d in dets], dtype=float),
        "Y5R500": np.array([d["Y5R500"] for d in dets], dtype=float),
    }
    t = Table(cols, meta=dict(meta or {}))
    for name, unit in DETECTION_COLUMNS:
        if unit:
            t[name].unit = unit
    return t


def write_detections(path, dets: list[dict], meta: dict | None = None) -> None:
    """Write the detection catalogue (ECSV) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    detections_table(dets, meta).write(tmp, format="ascii.ecsv", overwrite=True)
    os.replace(tmp, path)


def write_snr_map(path, res: TileResult, nside: int, tile: int, attrs: dict | None = None) -> None:
    """Write the per-tile S/N and Y maps (HDF5) atomically.

    Layout: ``pixels`` int64 (P,) RING pixels of the tile at ``nside``; ``snr`` float32 (T, P)
    and ``y5r500`` float32 (T, P) [arcmin^2] per theta500 bin; ``theta500`` (T,) arcmin;
    ``centres`` (C, 2) patch centres (glon, glat); ``sigma`` (C, T) Y noise per patch and bin;
    attrs nside, tile, nside_centres, bands, ... (NaN where no patch covered a pixel).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["nside"] = int(nside)
        f.attrs["tile"] = int(tile)
        f.attrs["nside_centres"] = int(res.nside_centres)
        f.attrs["invalid_fraction"] = float(res.invalid_fraction)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        f.create_dataset("pixels", data=res.pixels.astype(np.int64))
        f.create_dataset("snr", data=res.snr, compression="gzip", shuffle=True)
        f.create_dataset("y5r500", data=res.y, compression="gzip", shuffle=True)
        f.create_dataset("theta500", data=res.theta500)
        f.create_dataset("centres", data=res.centres)
        f.create_dataset("sigma", data=res.sigma)
    os.replace(tmp, path)


def read_snr_map(path) -> dict:
    """Read a file written by :func:`write_snr_map` into a dict of arrays and attrs."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise MMFError(f"cannot read MMF map {path}: {exc}") from exc
    with f:
        for key in ("pixels", "snr", "y5r500", "theta500"):
            if key not in f:
                raise MMFError(f"MMF map {path} has no '{key}' dataset")
        out = {k: f[k][...] for k in f}
        out["attrs"] = dict(f.attrs)
    return out
