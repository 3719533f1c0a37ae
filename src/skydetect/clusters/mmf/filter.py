"""The matched multi-frequency filter of one flat patch (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

from skydetect.clusters.mmf.noise import _annuli, _spectra_on_distinct_k, _windowed_ft, fourier_grid
from skydetect.clusters.mmf.peaks import find_peaks
from skydetect.clusters.mmf.profiles import MMFError, beam_transfer, profile_transform


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
    workers: int | None = None,
) -> PatchResult:
    """Run the MMF on one flat patch.

    ``maps`` (B, S, S) in map units; ``fwhm_arcmin``, ``tsz_per_y`` (B,) per band; ``theta500``
    (T,) arcmin; ``window`` (S, S) apodisation x valid-pixel weight (default: none);
    ``noise_ps`` (S, S//2+1, B, B) a known noise spectrum (default: estimated from the maps,
    see :func:`estimate_noise_spectra`); ``subtract_snr``: with an estimated spectrum, clusters
    found at S/N >= this in a first pass are subtracted before the spectrum is estimated again
    (None or 0: a single pass); ``workers``: threads of the FFTs (scipy.fft).

    The noise spectrum is estimated once per pass for all theta500 (and solved at the
    distinct |k| of the grid only); the theta500 maps come from one batched inverse FFT.
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
    x = (maps / scale[:, None, None]).astype(np.float32)  # single-precision FFTs
    a = tsz / scale
    ft = _windowed_ft(x, np.asarray(window, dtype=np.float32), workers)
    if noise_ps is None:  # isotropic: solved at the distinct |k| of the grid only
        p = _spectra_on_distinct_k(ft, window, min_modes, smooth_bins)
    else:
        p = np.asarray(noise_ps, dtype=float) / np.outer(scale, scale)
    weight, kidx, beams, taus = _fourier_setup(
        size, float(pixel_arcmin), tuple(fwhm), tuple(thetas), pixwin_nside, profile, truncation
    )
    ab = a[:, None, None] * beams / pixel_arcmin**2  # tSZ x beam per unit Y, per mode
    res = _apply_filter(ft, p, ab, taus, weight, kidx == 0, thetas, min_modes, workers)
    if noise_ps is None and subtract_snr:
        # The clusters themselves inflate the spectrum estimated from the data (and bias
        # their own S/N low by ~ (S/N)^2 / number of signal modes): subtract the best-fit
        # templates of the bright ones and estimate the spectrum again (as MMF3 does).
        peaks = find_peaks(res, subtract_snr, footprint=5)
        if peaks:
            model = np.zeros_like(x)
            ky = np.fft.fftfreq(size)[:, None]
            kx = np.fft.rfftfreq(size)[None, :]
            mft = np.zeros(ab.shape, dtype=complex)
            for pk in peaks:
                phase = np.exp(-2j * np.pi * (ky * pk.y + kx * pk.x))
                mft += pk.yval * ab * taus[pk.itheta] * phase
            model = sfft.irfft2(mft, s=(size, size), workers=workers)
            p = _spectra_on_distinct_k(
                _windowed_ft(x - model, window, workers), window, min_modes, smooth_bins
            )
            res = _apply_filter(ft, p, ab, taus, weight, kidx == 0, thetas, min_modes, workers)
    return res


@lru_cache(maxsize=4)
def _fourier_setup(size, pixel_arcmin, fwhm, thetas, pixwin_nside, profile, truncation):
    """Mode weights, |k|, beam transfer (B, S, S/2+1) and profile transforms per theta500,
    shared by every patch of the same geometry."""
    q, weight, kidx = fourier_grid(size, pixel_arcmin)
    beams = np.stack([beam_transfer(q, f, pixwin_nside) for f in fwhm])
    taus = np.stack([profile_transform(q, th, profile, truncation) for th in thetas])
    return weight, kidx, beams, taus


def _apply_filter(ft, p, ab, taus, weight, dc, thetas, min_modes, workers=None) -> PatchResult:
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
    abpd = np.sum(pinv_ab.astype(ft.real.dtype) * ft, axis=0)  # complex; P symmetric
    abpab[dc] = 0.0
    abpd[dc] = 0.0
    norms = np.einsum("tij,ij->t", taus**2, weight * abpab)  # sigma_theta^-2 for all theta
    bad = ~(norms > 0)
    if bad.any():
        raise MMFError(f"filter normalisation is {norms[bad][0]} for theta500={thetas[bad][0]}")
    s2 = 1.0 / norms
    sigma = np.sqrt(s2)
    tau_c = taus.astype(abpd.real.dtype)
    yhat = sfft.irfft2(tau_c * abpd, s=(size, size), workers=workers)  # (T, S, S), one call
    yhat *= (size * size * s2)[:, None, None]
    snr = (yhat / sigma[:, None, None]).astype(np.float32)
    return PatchResult(
        theta500=np.asarray(thetas), snr=snr, y=yhat.astype(np.float32), sigma=sigma
    )
