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


@lru_cache(maxsize=8)
def _binning(size: int, min_modes: int, smooth_bins: int):
    """Linear maps of the spectrum estimate, shared by all patches of a geometry: mode ->
    annulus mean (nbin, modes; sparse), then smoothing over ``smooth_bins`` annuli and
    interpolation to the distinct |k| as one (U, nbin) matrix."""
    from scipy import sparse

    b, bw, nmodes, kcen, ku, _, _ = _annuli(size, int(min_modes))
    nbin = len(nmodes)
    mean = sparse.csr_matrix((bw / nmodes[b], (b, np.arange(b.size))), shape=(nbin, b.size))
    smooth = np.eye(nbin)
    if smooth_bins > 1 and nbin > smooth_bins:
        wsum = ndimage.uniform_filter1d(nmodes, smooth_bins, mode="nearest")
        smooth = (
            ndimage.uniform_filter1d(np.diag(nmodes), smooth_bins, axis=0, mode="nearest")
            / wsum[:, None]
        )
    interp = np.stack([np.interp(ku, kcen, e) for e in np.eye(nbin)], axis=1)  # (U, nbin)
    return mean, interp @ smooth


def _spectra_on_distinct_k(ft, window, min_modes: int, smooth_bins: int) -> np.ndarray:
    """Azimuthally averaged, smoothed cross-spectra (U, B, B) at the distinct |k| of the grid:
    all band pairs and all steps (annulus means, smoothing, interpolation) in one product."""
    nb, size = ft.shape[0], ft.shape[1]
    norm = size * size / float(np.sum(np.asarray(window) ** 2))
    f2 = ft.reshape(nb, -1)
    iu, ju = np.triu_indices(nb)
    cross = f2[iu].real * f2[ju].real + f2[iu].imag * f2[ju].imag  # (pairs, modes)
    mean, post = _binning(size, int(min_modes), int(smooth_bins))
    spec = post @ (mean @ cross.T) * norm  # (U, pairs)
    out = np.empty((spec.shape[0], nb, nb))
    out[:, iu, ju] = spec
    out[:, ju, iu] = spec
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


def _windowed_ft(maps, window, workers: int | None = None):
    w = np.asarray(window, dtype=np.result_type(maps, np.float32))
    mean = np.sum(maps * w, axis=(1, 2), keepdims=True) / np.sum(w)
    return sfft.rfft2((maps - mean) * w, axes=(1, 2), workers=workers)


