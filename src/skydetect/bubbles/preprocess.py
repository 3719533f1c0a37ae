"""The one preprocessing of a bubble window, shared by training crops, validation windows,
negative windows and full-mosaic inference.

``preprocess_window(image, x0, y0, size, **config["bubbles"]["preprocess"])`` cuts the square
window ``image[:, y0:y0+size, x0:x0+size]`` of a tile (channels (24 µm, 8 µm)) and returns a
float32 array (S, S, 2) in [0, 1], S = ``input_size``:

1. point sources: pixels of the 8 µm channel whose white top-hat residual (the image minus
   its grey opening over ``point_source_filter_px`` pixels: compact peaks only) exceeds the
   residual's median by ``point_source_nsigma`` robust σ (1.4826·MAD);
2. per channel, over finite pixels that are not point sources: lo = minimum of all finite
   pixels, hi = mean + ``clip_sigma``·σ (as the reference: subtract the minimum, clip at
   mean + 3σ, scale to [0, 1]);
3. NaN pixels: a NaN region touching the window border (no coverage, mosaic edge, a mask)
   becomes lo (0); an enclosed NaN region (saturated core) becomes hi (1);
4. clip to [lo, hi] and scale to [0, 1]; a channel without finite pixels or with hi <= lo is 0;
5. Gaussian anti-aliasing with σ = (size/S − 1)/2 window pixels when downsampling;
6. bilinear resampling to S × S on pixel centres (window pixel u ↔ input pixel u·S/size).

Every step is symmetric under 90° rotations and flips of the window, so augmenting after
preprocessing is the same as preprocessing an augmented window.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DEFAULTS = {
    "input_size": 300,
    "clip_sigma": 3.0,
    "point_source_nsigma": 5.0,
    "point_source_filter_px": 5,
    "antialias": True,
}
PS_CHANNEL = 1  # 8 µm in the channel order (24 µm, 8 µm)


def _interp_weights(n_in: int, n_out: int):
    """Bilinear interpolation on pixel centres, clamped at the edges: (i0, i1, w1)."""
    t = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    t = np.clip(t, 0.0, n_in - 1.0)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, t - i0


def point_source_mask(channel: np.ndarray, nsigma: float, filter_px: int) -> np.ndarray:
    """Compact peaks: white top-hat residual above ``nsigma`` robust σ (NaN never count)."""
    finite = np.isfinite(channel)
    if finite.sum() < 4:
        return np.zeros(channel.shape, bool)
    filled = np.where(finite, channel, np.median(channel[finite]))
    resid = ndimage.white_tophat(filled, size=filter_px, mode="nearest")
    r = resid[finite]
    med = np.median(r)
    sigma = 1.4826 * np.median(np.abs(r - med))
    if sigma <= 0:
        return np.zeros(channel.shape, bool)
    return finite & (resid > med + nsigma * sigma)


def _fill_nan(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    labels, n = ndimage.label(bad)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = np.isin(labels, border[border > 0])
    out = x.copy()
    out[edge] = lo
    out[bad & ~edge] = hi
    return out


def normalise_window(
    window: np.ndarray,
    clip_sigma: float = 3.0,
    point_source_nsigma: float = 5.0,
    point_source_filter_px: int = 5,
) -> np.ndarray:
    """Steps 1-4 on a (C, n, n) window at its native resolution: float64 in [0, 1]."""
    window = np.asarray(window, dtype=np.float64)
    ps = point_source_mask(window[PS_CHANNEL], point_source_nsigma, point_source_filter_px)
    out = np.zeros_like(window)
    for c in range(window.shape[0]):
        x = window[c]
        finite = np.isfinite(x)
        if not finite.any():
            continue
        valid = finite & ~ps
        if valid.sum() < 2:
            valid = finite
        lo = float(x[finite].min())
        v = x[valid]
        hi = float(v.mean() + clip_sigma * v.std())
        if not hi > lo:
            continue
        x = _fill_nan(x, lo, hi)
        out[c] = (np.clip(x, lo, hi) - lo) / (hi - lo)
    return out


def resample(x: np.ndarray, input_size: int, antialias: bool = True) -> np.ndarray:
    """Steps 5-6: (C, n, n) -> (input_size, input_size, C) float32."""
    n = x.shape[-1]
    factor = n / input_size
    if antialias and factor > 1.0:
        x = ndimage.gaussian_filter(
            x, sigma=(0, (factor - 1) / 2, (factor - 1) / 2), mode="nearest"
        )
    # separable bilinear interpolation by gathering (no BLAS: tiny products are slow there)
    i0, i1, w1 = _interp_weights(n, input_size)
    rows = x[:, i0, :] * (1.0 - w1)[:, None] + x[:, i1, :] * w1[:, None]
    out = rows[:, :, i0] * (1.0 - w1) + rows[:, :, i1] * w1
    return np.ascontiguousarray(np.moveaxis(out, 0, -1), dtype=np.float32)


def check_window(shape: tuple[int, int], x0: int, y0: int, size: int) -> None:
    h, w = shape
    if size < 1 or x0 < 0 or y0 < 0 or x0 + size > w or y0 + size > h:
        raise ValueError(
            f"window x0={x0} y0={y0} size={size} leaves the {h} x {w} image "
            "(windows must lie fully inside; shift them, never truncate)"
        )


def preprocess_window(
    image: np.ndarray,
    x0: int,
    y0: int,
    size: int,
    *,
    input_size: int = 300,
    clip_sigma: float = 3.0,
    point_source_nsigma: float = 5.0,
    point_source_filter_px: int = 5,
    antialias: bool = True,
) -> np.ndarray:
    """Preprocess the window (x0, y0, size) of ``image`` (C, H, W): (S, S, C) float32 in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (channels, H, W), got shape {image.shape}")
    x0, y0, size = int(x0), int(y0), int(size)
    check_window(image.shape[1:], x0, y0, size)
    window = image[:, y0 : y0 + size, x0 : x0 + size]
    x = normalise_window(window, clip_sigma, point_source_nsigma, point_source_filter_px)
    return resample(x, int(input_size), antialias)


def preprocess_windows(image, x0s, y0s, sizes, *, progress: bool = False, **kwargs) -> np.ndarray:
    """:func:`preprocess_window` for many windows: (N, S, S, C) float32."""
    from tqdm import tqdm

    s = int(kwargs.get("input_size", DEFAULTS["input_size"]))
    out = np.empty((len(x0s), s, s, np.asarray(image).shape[0]), np.float32)
    it = zip(x0s, y0s, sizes, strict=True)
    for i, (x0, y0, size) in enumerate(
        tqdm(it, total=len(x0s), disable=not progress, desc="preprocess", mininterval=5)
    ):
        out[i] = preprocess_window(image, x0, y0, size, **kwargs)
    return out
