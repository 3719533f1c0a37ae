"""Fourier grid, apodisation and the noise cross-power spectra of a flat patch."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy import ndimage


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
def annuli(size: int, min_modes: int):
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


@lru_cache(maxsize=8)
def _binning(size: int, min_modes: int, smooth_bins: int):
    """The linear map from annulus means to the spectrum estimate, shared by all patches of
    a geometry: smoothing over ``smooth_bins`` annuli and interpolation to the distinct |k|
    as one (U, nbin) matrix."""
    _, _, nmodes, kcen, ku, _, _ = annuli(size, int(min_modes))
    nbin = len(nmodes)
    smooth = np.eye(nbin)
    if smooth_bins > 1 and nbin > smooth_bins:
        wsum = ndimage.uniform_filter1d(nmodes, smooth_bins, mode="nearest")
        smooth = (
            ndimage.uniform_filter1d(np.diag(nmodes), smooth_bins, axis=0, mode="nearest")
            / wsum[:, None]
        )
    interp = np.stack([np.interp(ku, kcen, e) for e in np.eye(nbin)], axis=1)  # (U, nbin)
    return interp @ smooth


@lru_cache(maxsize=8)
def _bin_order(size: int, min_modes: int):
    """The modes of the grid (k = 0 left out) sorted by annulus, the square root of their
    weight in their annulus mean, and the bounds of each annulus in that order."""
    b, bw, nmodes, *_ = annuli(size, int(min_modes))
    keep = np.nonzero(bw > 0)[0]
    perm = keep[np.argsort(b[keep], kind="stable")]
    sqrt_w = np.sqrt(bw[perm] / nmodes[b[perm]])
    bounds = np.searchsorted(b[perm], np.arange(len(nmodes) + 1))
    return perm, sqrt_w, bounds


def spectra_on_distinct_k(ft, window, min_modes: int, smooth_bins: int) -> np.ndarray:
    """Azimuthally averaged, smoothed cross-spectra (U, B, B) at the distinct |k| of the grid.
    A stack ``ft`` (N, B, S, S/2+1) with ``window`` (N, S, S) gives (N, U, B, B).

    The annulus means of all band pairs are one (B, 2L) @ (2L, B) product per annulus (L
    modes, real and imaginary parts side by side, weights folded in as square roots), for
    all patches at once; smoothing and interpolation to the distinct |k| one more product."""
    single = ft.ndim == 3
    if single:
        ft, window = ft[None], np.asarray(window)[None]
    n, nb, size = ft.shape[0], ft.shape[1], ft.shape[2]
    w = np.asarray(window, dtype=float)
    norm = size * size / np.sum(w * w, axis=(-2, -1))  # (N,)
    perm, sqrt_w, bounds = _bin_order(size, int(min_modes))
    f = ft.reshape(n, nb, -1)[:, :, perm] * sqrt_w.astype(ft.real.dtype)  # sorted by annulus
    v = np.ascontiguousarray(f).view(f.real.dtype)  # (N, B, 2L): re, im interleaved
    nbin = len(bounds) - 1
    binned = np.empty((nbin, n, nb, nb))
    for i in range(nbin):
        s = v[:, :, 2 * bounds[i] : 2 * bounds[i + 1]]
        binned[i] = np.matmul(s, s.transpose(0, 2, 1))  # Re(F F^H) summed over the annulus
    post = _binning(size, int(min_modes), int(smooth_bins))
    out = (post @ binned.reshape(nbin, -1)).reshape(-1, n, nb, nb).transpose(1, 0, 2, 3)
    out = out * norm[:, None, None, None]
    return out[0] if single else out


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
        ft = windowed_ft(maps, window)
    inv = annuli(size, int(min_modes))[-1]
    p = spectra_on_distinct_k(ft, window, min_modes, smooth_bins)
    return p[inv].reshape(size, size // 2 + 1, nb, nb)


def windowed_ft(maps, window, workers: int | None = None):
    """rfft2 of the mean-subtracted, windowed ``maps`` (..., B, S, S); ``window`` (S, S) or
    one per stack element (..., S, S)."""
    w = np.asarray(window, dtype=np.result_type(maps, np.float32))
    if w.ndim == maps.ndim - 1:
        w = w[..., None, :, :]
    mean = np.sum(maps * w, axis=(-2, -1), keepdims=True) / np.sum(w, axis=(-2, -1), keepdims=True)
    return sfft.rfft2((maps - mean) * w, axes=(-2, -1), workers=workers)
