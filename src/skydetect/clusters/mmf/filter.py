"""The matched multi-frequency filter of flat patches (see the package docstring).

:func:`filter_patches` filters a stack of patches of one geometry at once: the windowed
FFTs, the cross-spectra of all patches and band pairs, the B x B solves and the theta500
maps are each one batched operation (no Python loop over patches); the beams, the profile
transforms and their per-|k| norms are computed once per geometry and cached.
:func:`filter_patch` is the one-patch case.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

from skydetect.clusters.mmf.noise import annuli, fourier_grid, spectra_on_distinct_k, windowed_ft
from skydetect.clusters.mmf.peaks import find_peaks
from skydetect.clusters.mmf.profiles import MMFError, beam_transfer, profile_transform
from skydetect.clusters.mmf.result import PatchResult


def filter_patch(
    maps, pixel_arcmin: float, fwhm_arcmin, tsz_per_y, theta500, window=None, noise_ps=None, **kw
) -> PatchResult:
    """Run the MMF on one flat patch: :func:`filter_patches` of a stack of one.

    ``maps`` (B, S, S) in map units; ``window`` (S, S) (default: none); ``noise_ps``
    (S, S//2+1, B, B) a known noise spectrum (default: estimated from the maps); the other
    keywords are those of :func:`filter_patches`."""
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3 or maps.shape[1] != maps.shape[2]:
        raise MMFError(f"maps must be (bands, S, S), got {maps.shape}")
    win = None if window is None else np.asarray(window, dtype=float)[None]
    return filter_patches(
        maps[None], pixel_arcmin, fwhm_arcmin, tsz_per_y, theta500, win, noise_ps, **kw
    )[0]


def filter_patches(
    maps,
    pixel_arcmin: float,
    fwhm_arcmin,
    tsz_per_y,
    theta500,
    windows=None,
    noise_ps=None,
    pixwin_nside: int | None = None,
    profile: str = "arnaud10",
    truncation: float = 5.0,
    min_modes: int = 50,
    smooth_bins: int = 3,
    subtract_snr: float | None = 10.0,
    workers: int | None = None,
) -> list[PatchResult]:
    """Run the MMF on a stack of flat patches of one geometry; one :class:`PatchResult` each.

    ``maps`` (N, B, S, S) in map units; ``fwhm_arcmin``, ``tsz_per_y`` (B,) per band;
    ``theta500`` (T,) arcmin; ``windows`` (N, S, S) apodisation x valid-pixel weight per
    patch (default: none); ``noise_ps`` (S, S//2+1, B, B) a known noise spectrum shared by
    the patches (default: estimated from each patch's maps, see
    :func:`estimate_noise_spectra`); ``subtract_snr``: with an estimated spectrum, clusters
    found at S/N >= this in a first pass are subtracted before the spectrum of their patch is
    estimated again (None or 0: a single pass); ``workers``: threads of the FFTs (scipy.fft).

    Each patch's spectrum is estimated once per pass for all theta500 (and solved at the
    distinct |k| of the grid only); the maps come from one batched inverse FFT. FFTs are in
    single precision, spectra, solves and normalisations in double precision.
    """
    maps, fwhm, tsz, windows = _checked_inputs(maps, fwhm_arcmin, tsz_per_y, windows)
    n, nb, size, _ = maps.shape
    thetas = np.atleast_1d(np.asarray(theta500, dtype=float))
    x, win32, scale, ft = _scaled_ft(maps, windows, workers)
    a = tsz / scale  # (N, B)
    setup = _fourier_setup(
        size,
        float(pixel_arcmin),
        tuple(fwhm),
        tuple(thetas),
        pixwin_nside,
        profile,
        truncation,
        int(min_modes),
        noise_ps is None,
    )
    if noise_ps is None:  # isotropic: solved at the distinct |k| of the grid only
        p = spectra_on_distinct_k(ft, windows, min_modes, smooth_bins)  # (N, U, B, B)
    else:
        ps = np.asarray(noise_ps, dtype=float).reshape(-1, nb, nb)
        p = ps[None] / (scale[:, :, None] * scale[:, None, :])[:, None]
    ab = a[:, None, :] * setup.beams_u[None] / pixel_arcmin**2  # (N, U, B) per unit Y
    res = _apply_filter(ft, p, ab, setup, thetas, workers)
    if noise_ps is None and subtract_snr:
        x_scaled = (x, scale, win32, windows)
        _subtract_bright(res, x_scaled, ft, ab, setup, thetas, subtract_snr,
                         (min_modes, smooth_bins), workers)  # fmt: skip
    return res


def _checked_inputs(maps, fwhm_arcmin, tsz_per_y, windows):
    """``maps`` (N, B, S, S), the per-band beams and tSZ factors, the (N, S, S) windows."""
    maps = np.asarray(maps)
    if maps.ndim != 4 or maps.shape[2] != maps.shape[3]:
        raise MMFError(f"maps must be (patches, bands, S, S), got {maps.shape}")
    n, nb, size, _ = maps.shape
    fwhm = np.asarray(fwhm_arcmin, dtype=float)
    tsz = np.asarray(tsz_per_y, dtype=float)
    if fwhm.shape != (nb,) or tsz.shape != (nb,):
        raise MMFError(
            f"need one beam and one tSZ factor per band ({nb}), got {fwhm.shape}, {tsz.shape}"
        )
    if windows is None:
        windows = np.ones((n, size, size))
    windows = np.broadcast_to(np.asarray(windows, dtype=float), (n, size, size))
    return maps, fwhm, tsz, windows


def _scaled_ft(maps, windows, workers):
    """(single-precision maps, float32 windows, per-band rms (N, B), the windowed FFT of the
    mean-subtracted maps in units of that rms). Working in units of each band's rms is
    numerically better conditioned; any scale cancels exactly, as the data and the tSZ
    factors are divided by the same one."""
    win32 = windows.astype(np.float32)
    x = np.asarray(maps, dtype=np.float32)  # single-precision FFTs
    w = win32[:, None]
    xw = x * w
    ms = np.einsum("nbij,nbij->nb", xw, xw).astype(float) / np.sum(w * w, axis=(2, 3))
    scale = np.where(ms > 0, np.sqrt(ms), 1.0).astype(np.float32)
    # the windowed FFT of the mean-subtracted maps (as windowed_ft does), scaled after
    xw -= (np.sum(xw, axis=(2, 3)) / np.sum(w, axis=(2, 3)))[..., None, None] * w
    ft = sfft.rfft2(xw, axes=(-2, -1), workers=workers, overwrite_x=True)
    ft *= (1.0 / scale)[..., None, None]  # (N, B, S, S/2+1)
    return x, win32, scale.astype(float), ft


def _subtract_bright(res, x_scaled, ft, ab, setup, thetas, subtract_snr, binning, workers):
    """Second pass, in place on ``res``: the clusters themselves inflate the spectrum
    estimated from the data (and bias their own S/N low by ~ (S/N)^2 / number of signal
    modes), so the best-fit templates of those at S/N >= ``subtract_snr`` are subtracted and
    the spectrum of their patch is estimated again (as MMF3 does)."""
    x, scale, win32, windows = x_scaled
    min_modes, smooth_bins = binning
    size = x.shape[-1]
    redo, models = [], []
    for i, r in enumerate(res):
        peaks = find_peaks(r, subtract_snr, footprint=5) if r.snr.max() >= subtract_snr else []
        if peaks:
            redo.append(i)
            models.append(_cluster_model(peaks, ab[i], setup, size, workers))
    if not redo:
        return
    idx = np.asarray(redo)
    xs = x[idx] / scale[idx, :, None, None].astype(np.float32)
    ft2 = windowed_ft(xs - np.stack(models), win32[idx], workers)
    p2 = spectra_on_distinct_k(ft2, windows[idx], min_modes, smooth_bins)
    again = _apply_filter(ft[idx], p2, ab[idx], setup, thetas, workers)
    for i, r in zip(redo, again, strict=True):
        res[i] = r


@dataclass(frozen=True)
class _Setup:
    """What a patch geometry shares: the distinct |k| (U of them; every mode when the
    spectrum is given per mode), their first mode and the grid -> distinct index, the beams
    (U, B) and profile transforms (T, S, S/2+1) there, and sum over the modes of each |k|
    of weight x T_theta^2 (T, U; k = 0 excluded): the filter norms are then (U,) products;
    ``q2_u`` (U,) is |q|^2 there (cycles^2 / arcmin^2)."""

    first: np.ndarray
    inv: np.ndarray
    beams_u: np.ndarray
    taus: np.ndarray
    taus_c: np.ndarray
    tau2w: np.ndarray
    q2_u: np.ndarray


@lru_cache(maxsize=8)
def _fourier_setup(
    size, pixel_arcmin, fwhm, thetas, pixwin_nside, profile, truncation, min_modes, isotropic
) -> _Setup:
    q, weight, kidx = fourier_grid(size, pixel_arcmin)
    beams = np.stack([beam_transfer(q, f, pixwin_nside) for f in fwhm])  # (B, S, S/2+1)
    taus = np.stack([profile_transform(q, th, profile, truncation) for th in thetas])
    nmode = q.size
    if isotropic:
        *_, first, inv = annuli(size, int(min_modes))
    else:
        first = inv = np.arange(nmode)
    wt = (weight * (kidx > 0)).ravel()
    tau2w = np.stack(
        [np.bincount(inv, weights=wt * t.ravel() ** 2, minlength=len(first)) for t in taus]
    )
    beams_u = beams.reshape(len(fwhm), -1)[:, first].T
    taus_c = taus.astype(np.complex64)
    return _Setup(first, inv, beams_u, taus, taus_c, tau2w, q.ravel()[first] ** 2)


def _cluster_model(peaks, ab_u, setup: _Setup, size: int, workers) -> np.ndarray:
    """Best-fit templates (B, S, S) of the ``peaks`` of one patch (``ab_u`` (U, B))."""
    ky = np.fft.fftfreq(size)[:, None]
    kx = np.fft.rfftfreq(size)[None, :]
    ab = ab_u.T[:, setup.inv].reshape(-1, size, size // 2 + 1)
    mft = np.zeros(ab.shape, dtype=complex)
    for pk in peaks:
        phase = np.exp(-2j * np.pi * (ky * pk.y + kx * pk.x))
        mft += pk.yval * ab * setup.taus[pk.itheta] * phase
    return sfft.irfft2(mft, s=(size, size), workers=workers)


def _apply_filter(ft, p, ab, setup: _Setup, thetas, workers=None) -> list[PatchResult]:
    """Filter the FFTs ``ft`` (N, B, S, S/2+1) with spectra ``p`` (N, U, B, B) at the
    distinct |k| of the setup (or (1, U, B, B) shared), ``ab`` (N, U, B)."""
    n, nb, size = ft.shape[0], ft.shape[1], ft.shape[2]
    ridge = 1e-9 * np.trace(p, axis1=-2, axis2=-1)[..., None, None] / nb
    # P^-1 (a b) once per |k| (regularised); the profile is a scalar factor per mode
    sol = _solve_spd(p + ridge * np.eye(nb), ab)  # (N, U, B)
    abpab = np.einsum("nub,nub->nu", ab, sol)  # (N, U)
    norms = abpab @ setup.tau2w.T  # (N, T): sigma_theta^-2 of every patch and theta
    bad = ~(norms > 0)
    if bad.any():
        i, t = np.argwhere(bad)[0]
        raise MMFError(f"filter normalisation is {norms[i, t]} for theta500={thetas[t]}")
    s2 = 1.0 / norms
    q2 = (abpab * setup.q2_u) @ setup.tau2w.T * s2  # (N, T) signal-weighted mean |q|^2
    sigma = np.sqrt(s2)
    pinv_ab = np.ascontiguousarray(sol.transpose(0, 2, 1), dtype=np.float32)[..., setup.inv]
    abpd = np.einsum("nbm,nbm->nm", pinv_ab, ft.reshape(n, nb, -1))  # complex; P symmetric
    abpd[:, 0] = 0.0  # the mean (k = 0)
    # S/N = Y_hat / sigma, Y_hat = N_pix sigma^2 IDFT(T_theta abpd): the (N, T) factor
    # N_pix sigma goes with the profile, and one batched inverse FFT gives the S/N maps
    z = setup.taus_c[None] * (size * size * sigma).astype(np.float32)[:, :, None, None]
    z *= abpd.reshape(n, 1, size, -1)  # (N, T, S, S/2+1)
    snr = sfft.irfft2(z, s=(size, size), axes=(-2, -1), workers=workers, overwrite_x=True)
    return [
        PatchResult(theta500=np.asarray(thetas), snr=snr[i], sigma=sigma[i], q2=q2[i])
        for i in range(n)
    ]


def _solve_spd(p, rhs):
    """``P^-1 rhs`` for stacks of symmetric positive-definite matrices ``p`` (..., B, B) and
    vectors ``rhs`` (..., B): a Cholesky factorisation written out over the B x B entries,
    each step one array operation over the whole stack (B is small, the stack large: ~5x
    faster than LAPACK called matrix by matrix). Matrices that are not numerically positive
    definite are solved by ``np.linalg.solve``."""
    nb = p.shape[-1]
    a = np.moveaxis(p, (-2, -1), (0, 1))
    y = list(np.moveaxis(rhs, -1, 0).astype(float))
    low = [[None] * nb for _ in range(nb)]
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(nb):
            d = a[j, j] - sum(low[j][k] ** 2 for k in range(j))
            low[j][j] = np.sqrt(d)
            for i in range(j + 1, nb):
                low[i][j] = (a[i, j] - sum(low[i][k] * low[j][k] for k in range(j))) / low[j][j]
        for i in range(nb):
            y[i] = (y[i] - sum(low[i][k] * y[k] for k in range(i))) / low[i][i]
        for i in reversed(range(nb)):
            y[i] = (y[i] - sum(low[k][i] * y[k] for k in range(i + 1, nb))) / low[i][i]
    out = np.stack(y, axis=-1)
    bad = ~np.isfinite(out).all(axis=-1)
    if bad.any():
        out[bad] = np.linalg.solve(p[bad], rhs[bad][..., None])[..., 0]
    return out
