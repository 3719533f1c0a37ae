"""The one preprocessing of a bubble window, shared by training crops, validation windows,
negative windows and whole-field detection.

A field (channels (24 µm, 8 µm), shape (C, H, W)) is prepared once by
:class:`FieldPreprocessor`; a window ``(x0, y0, size)`` then becomes a float32 array
(S, S, C) in [0, 1], S = ``input_size``:

1. NaN (no coverage, saturated cores, masks) -> local background: a Gaussian-weighted mean
   of the finite pixels within ~``nan_fill_px`` (normalised convolution), 4 and 16 times
   wider for pixels farther from data, then block means, then the channel median (:func:`fill_nan`; the same in training and
   inference). The window's validity fraction is the share of finite pixels;
2. point sources: 8 µm pixels whose white top-hat residual (the image minus its grey opening
   over ``point_source_filter_px`` pixels: compact peaks only) exceeds the residual's median
   by ``point_source_nsigma`` robust σ (1.4826·MAD over the prepared image);
3. Gaussian anti-aliasing of the filled image with σ = (size/S − 1)/2 pixels when
   downsampling — computed once per window scale for the whole field;
4. bilinear resampling to S × S on pixel centres (window pixel u ↔ input pixel u·S/size):
   the window is a slice of the smoothed field, gathered at the S × S sample points;
5. per channel: lo = minimum of the resampled window, hi = mean + ``clip_sigma``·σ of the
   window's finite, non-point-source native pixels (the reference: subtract the minimum,
   clip at mean + 3σ, scale to [0, 1]); the sums come from summed-area tables of each row of
   windows, so a window's statistics cost O(1) after O(size · W) per row; a channel without
   finite pixels in the window, or with hi <= lo, is 0.

:func:`preprocess_window` runs the same steps on the window and a margin around it (for
training crops); it agrees with the field path except for the point-source threshold's
statistics and the smoothing at the margin's edge. Windows reaching past the image (edge
windows, up to ``pad`` pixels; :mod:`skydetect.bubbles.windows`) go that way too: the part
outside is no coverage (NaN), filled by step 1 like any other NaN, on a cut-out of the
window and its margin only, so the field's own arrays never grow. Every step is symmetric under 90°
rotations and flips, so augmenting after preprocessing equals preprocessing an augmented
window.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from .windows import reaches_past

DEFAULTS = {
    "input_size": 300,
    "clip_sigma": 3.0,
    "point_source_nsigma": 5.0,
    "point_source_filter_px": 5,
    "antialias": True,
    "nan_fill_px": 2.0,
}
PS_CHANNEL = 1  # 8 µm in the channel order (24 µm, 8 µm)
ROW_BLOCK = 256  # rows summed at a time for the window statistics
WINDOW_BLOCK = 32  # windows of a row gathered at a time
LOCAL_MAX = 16  # fewer windows of one side than this are smoothed one by one


def _interp_weights(n_in: int, n_out: int):
    """Bilinear interpolation on pixel centres, clamped at the edges: (i0, i1, w1)."""
    t = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    t = np.clip(t, 0.0, n_in - 1.0)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (t - i0).astype(np.float32)


def _reach_box(mask: np.ndarray, reach: int) -> tuple[slice, slice]:
    """The bounding box of ``mask`` grown by ``reach`` pixels (clipped to the image)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(rows[0] - reach, 0), min(rows[-1] + reach + 1, h)),
        slice(max(cols[0] - reach, 0), min(cols[-1] + reach + 1, w)),
    )


def fill_nan(channel: np.ndarray, scale_px: float = 2.0) -> np.ndarray:
    """A float32 copy of ``channel`` with NaN replaced by the local background (step 1)."""
    x = np.asarray(channel, np.float32)
    valid = np.isfinite(x)
    if valid.all():
        return x.copy()
    if not valid.any():
        return np.zeros_like(x)
    zero = np.where(valid, x, 0.0).astype(np.float32)
    out = zero.copy()
    rest = ~valid
    sigma = float(scale_px)
    for _ in range(3):  # nearest ring first; wider holes from 4x and 16x wider neighbourhoods
        # only around the pixels still to fill: their bounding box plus the kernel's reach
        # (scipy truncates at 4 sigma), so the result is that of the whole image
        box = _reach_box(rest, int(4.0 * sigma + 0.5))
        num = ndimage.gaussian_filter(zero[box], sigma, mode="constant")
        den = ndimage.gaussian_filter(valid[box].astype(np.float32), sigma, mode="constant")
        ok = rest[box] & (den > 1e-3)
        out[box][ok] = num[ok] / den[ok]
        rest[box] &= ~ok
        if not rest.any():
            break
        sigma *= 4
    if rest.any():  # larger holes still: block means, then the median
        b = max(int(8 * sigma), 2)
        h, w = x.shape
        hb, wb = -(-h // b), -(-w // b)
        pad = ((0, hb * b - h), (0, wb * b - w))
        s = np.pad(zero, pad).reshape(hb, b, wb, b).sum(axis=(1, 3), dtype=np.float64)
        n = np.pad(valid, pad).reshape(hb, b, wb, b).sum(axis=(1, 3))
        block = np.where(n > 0, s / np.maximum(n, 1), np.median(x[valid]))
        coarse = np.repeat(np.repeat(block, b, axis=0), b, axis=1)[:h, :w]
        out[rest] = coarse[rest]
    return out


def point_source_mask(channel: np.ndarray, nsigma: float, filter_px: int, valid=None):
    """Compact peaks: white top-hat residual above ``nsigma`` robust σ (step 2)."""
    x = np.asarray(channel, np.float32)
    valid = np.isfinite(x) if valid is None else valid
    if valid.sum() < 4:
        return np.zeros(x.shape, bool)
    filled = np.where(valid, x, np.median(x[valid]))
    resid = ndimage.white_tophat(filled, size=filter_px, mode="nearest")
    r = resid[valid]
    if r.size > 2_000_000:  # robust statistics from a regular subsample
        r = r[:: r.size // 1_000_000]
    med = np.median(r)
    sigma = 1.4826 * np.median(np.abs(r - med))
    if sigma <= 0:
        return np.zeros(x.shape, bool)
    return valid & (resid > med + nsigma * sigma)


def check_window(shape: tuple[int, int], x0: int, y0: int, size: int, pad: int = 0) -> None:
    h, w = shape
    if size < 1 or x0 < -pad or y0 < -pad or x0 + size > w + pad or y0 + size > h + pad:
        where = "the" if pad == 0 else f"{pad} px around the"
        raise ValueError(
            f"window x0={x0} y0={y0} size={size} leaves {where} {h} x {w} image "
            "(windows must lie inside, or within bubbles.windows.edge_pad of the edge; "
            "shift them, never truncate)"
        )


class FieldPreprocessor:
    """Steps 1-2 done once for a field; :meth:`windows` / :meth:`window` do steps 3-5.

    With ``pad`` > 0 windows may reach ``pad`` pixels past the field's edges; those are
    prepared one by one from a cut-out (see the module docstring)."""

    def __init__(self, image, *, threads: int = 1, pad: int = 0, **kwargs):
        unknown = set(kwargs) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"bubbles.preprocess: unknown key(s) {', '.join(sorted(unknown))}")
        self.cfg = {**DEFAULTS, **kwargs}
        image = np.asarray(image)
        if image.ndim != 3:
            raise ValueError(f"image must be (channels, H, W), got shape {image.shape}")
        self.shape = image.shape[1:]
        self.pad = max(int(pad), 0)
        self.n_channels = image.shape[0]
        self.input_size = int(self.cfg["input_size"])
        self.threads = max(int(threads), 1)
        self.valid = np.isfinite(image)
        scale = float(self.cfg["nan_fill_px"])
        self.filled = np.empty(image.shape, np.float32)
        for c in range(self.n_channels):  # one channel's temporaries at a time
            self.filled[c] = fill_nan(image[c], scale)
        ps = point_source_mask(
            self.filled[PS_CHANNEL],
            self.cfg["point_source_nsigma"],
            int(self.cfg["point_source_filter_px"]),
            self.valid[PS_CHANNEL],
        )
        self.stat = self.valid & ~ps[None]
        self._smooth = (None, None)

    # -- helpers
    def _sigma(self, size: int) -> float:
        f = size / self.input_size
        return (f - 1.0) / 2.0 if self.cfg["antialias"] and f > 1.0 else 0.0

    def smoothed(self, size: int) -> np.ndarray:
        """The filled field smoothed for windows of ``size`` (only the latest scale kept)."""
        sigma = self._sigma(size)
        if sigma == 0.0:
            return self.filled
        if self._smooth[0] != sigma:
            self._smooth = (None, None)  # free the previous scale first
            sm = ndimage.gaussian_filter(self.filled, (0, sigma, sigma), mode="nearest")
            self._smooth = (sigma, sm)
        return self._smooth[1]

    def valid_fraction(self, x0, y0, size) -> float:
        v = self.valid[:, y0 : y0 + size, x0 : x0 + size].all(axis=0)
        return float(v.mean())

    def _row_stats(self, y0: int, size: int, x0s: np.ndarray):
        """hi (N, C) and finite counts (N, C) of windows (x0s, y0, size) by 1-D summed-area
        tables of the row's column sums."""
        c = self.n_channels
        hi = np.zeros((len(x0s), c))
        count = np.zeros((len(x0s), c))
        k = float(self.cfg["clip_sigma"])
        for ch in range(c):
            cols = np.zeros((2, 3, self.shape[1]))  # (stat | valid) x (n, sum, sum of squares)
            for r0 in range(y0, y0 + size, ROW_BLOCK):  # bounded temporaries
                rows = slice(r0, min(r0 + ROW_BLOCK, y0 + size))
                x = self.filled[ch, rows].astype(np.float64)
                for k, mask in enumerate((self.stat[ch, rows], self.valid[ch, rows])):
                    mx = np.where(mask, x, 0.0)
                    cols[k, 0] += mask.sum(axis=0)
                    cols[k, 1] += mx.sum(axis=0)
                    cols[k, 2] += (mx * x).sum(axis=0)
            sat = np.concatenate([np.zeros((2, 3, 1)), np.cumsum(cols, axis=2)], axis=2)
            box = sat[:, :, x0s + size] - sat[:, :, x0s]  # 1-D summed-area table lookups
            (n_stat, s1_stat, s2_stat), (n, s1, s2) = box
            use_stat = n_stat >= 2
            n = np.where(use_stat, n_stat, n)
            s1 = np.where(use_stat, s1_stat, s1)
            s2 = np.where(use_stat, s2_stat, s2)
            mean = s1 / np.maximum(n, 1)
            var = np.maximum(s2 / np.maximum(n, 1) - mean**2, 0.0)
            hi[:, ch] = mean + k * np.sqrt(var)
            count[:, ch] = n
        return hi, count

    def _row(self, sm, y0, size, x0s, out, idx, ox: int = 0, oy: int = 0):
        """Windows (x0s, y0, size) of one row: the strip is resampled in y once, each window
        is then a column gather of it; statistics from the row's summed-area tables."""
        hi, count = self._row_stats(y0, size, x0s)
        s = self.input_size
        i0, i1, w1 = _interp_weights(size, s)
        w0 = 1.0 - w1
        ys = y0 - oy  # sm may be a cut-out whose pixel (0, 0) is field pixel (ox, oy)
        strip = sm[:, ys + i0, :] * w0[:, None] + sm[:, ys + i1, :] * w1[:, None]  # (C, S, W)
        by_matmul = size <= 2 * s  # small windows: columns by a weight matrix (BLAS)
        if by_matmul:
            m = np.zeros((size, s), np.float32)  # the same bilinear weights as a matrix
            np.add.at(m, (i0, np.arange(s)), w0)
            np.add.at(m, (i1, np.arange(s)), w1)
            view = np.lib.stride_tricks.sliding_window_view(strip, size, axis=2)
        else:
            strip = np.ascontiguousarray(np.moveaxis(strip, 0, -1))  # (S, W, C)
        for start in range(0, len(x0s), WINDOW_BLOCK):
            sl = slice(start, start + WINDOW_BLOCK)
            if by_matmul:
                cols = view[:, :, x0s[sl] - ox]  # (C, S, n, size)
                r = np.moveaxis(cols @ m, 0, -1)  # (S, n, S, C)
            else:
                c0 = x0s[sl, None] - ox + i0[None, :]  # (n, S) columns of each window
                c1 = x0s[sl, None] - ox + i1[None, :]
                r = strip[:, c0] * w0[:, None] + strip[:, c1] * w1[:, None]  # (S, n, S, C)
            lo = r.min(axis=(0, 2))  # (n, C)
            h = hi[sl]
            ok = (count[sl] > 0) & (h > lo)
            scale = np.where(ok, 1.0 / np.where(ok, h - lo, 1.0), 0.0).astype(np.float32)
            r -= lo[None, :, None, :].astype(np.float32)
            np.minimum(r, (h - lo)[None, :, None, :].astype(np.float32), out=r)
            r *= scale[None, :, None, :]
            np.minimum(r, 1.0, out=r)  # float32 rounding of (hi - lo) / (hi - lo)
            out[idx[sl]] = np.moveaxis(r, 1, 0)

    def windows(self, x0s, y0s, sizes) -> np.ndarray:
        """Preprocessed windows (N, S, S, C) float32; grouped by scale, then by row."""
        x0s, y0s, sizes = (np.asarray(a, np.int64).reshape(-1) for a in (x0s, y0s, sizes))
        for a, b, c in zip(x0s, y0s, sizes, strict=True):
            check_window(self.shape, int(a), int(b), int(c), self.pad)
        s = self.input_size
        out = np.empty((len(x0s), s, s, self.n_channels), np.float32)
        edge = reaches_past(self.shape, x0s, y0s, sizes)
        for i in np.flatnonzero(edge):  # edge windows: a cut-out over no coverage
            out[i] = self._edge_window(int(x0s[i]), int(y0s[i]), int(sizes[i]))
        if edge.all():
            return out
        inside = np.flatnonzero(~edge)
        out[inside] = self._inside_windows(x0s[inside], y0s[inside], sizes[inside])
        return out

    def _edge_window(self, x0: int, y0: int, size: int) -> np.ndarray:
        """A window reaching past the field: its cut-out (window + margin) of the field's
        data, NaN outside the field and where the field has no data, through
        :func:`preprocess_window`."""
        m = _margin(size, self.cfg)
        h, w = self.shape
        cut = np.full((self.n_channels, size + 2 * m, size + 2 * m), np.nan, np.float32)
        fx0, fy0 = max(x0 - m, 0), max(y0 - m, 0)
        fx1, fy1 = min(x0 + size + m, w), min(y0 + size + m, h)
        if fx1 > fx0 and fy1 > fy0:
            ys, xs = slice(fy0, fy1), slice(fx0, fx1)
            dy, dx = fy0 - (y0 - m), fx0 - (x0 - m)
            cut[:, dy : dy + fy1 - fy0, dx : dx + fx1 - fx0] = np.where(
                self.valid[:, ys, xs], self.filled[:, ys, xs], np.nan
            )
        return preprocess_window(cut, m, m, size, **self.cfg)

    def _inside_windows(self, x0s, y0s, sizes) -> np.ndarray:
        s = self.input_size
        out = np.empty((len(x0s), s, s, self.n_channels), np.float32)

        def run(job):
            sm, y0, size, xs, g, ox, oy = job
            self._row(sm() if callable(sm) else sm, y0, size, xs, out, g, ox, oy)

        for size in np.unique(sizes):  # one scale at a time: one smoothed field in memory
            sel = np.flatnonzero(sizes == size)
            sigma = self._sigma(int(size))
            if sigma > 0 and len(sel) < LOCAL_MAX:  # few windows of this side (random
                # negatives, crops): smooth each one's cut-out only
                jobs = [self._local_job(int(x0s[i]), int(y0s[i]), int(size), sigma, i) for i in sel]
            else:  # a sliding-window scale: the whole field smoothed once
                sm = self.smoothed(int(size))
                groups = [sel[y0s[sel] == y] for y in np.unique(y0s[sel])]
                jobs = [(sm, int(y0s[g[0]]), int(size), x0s[g], g, 0, 0) for g in groups]
            if self.threads > 1 and len(jobs) > 1:
                with ThreadPoolExecutor(self.threads) as pool:
                    list(pool.map(run, jobs))
            else:
                for job in jobs:
                    run(job)
            del jobs
        return out

    def _local_job(self, x0, y0, size, sigma, i):
        m = int(np.ceil(4 * sigma)) + 1
        h, w = self.shape
        cx0, cy0 = max(x0 - m, 0), max(y0 - m, 0)
        cx1, cy1 = min(x0 + size + m, w), min(y0 + size + m, h)

        def smoothed_cut():
            cut = self.filled[:, cy0:cy1, cx0:cx1]
            return ndimage.gaussian_filter(cut, (0, sigma, sigma), mode="nearest")

        return (smoothed_cut, y0, size, np.array([x0]), np.array([i]), cx0, cy0)

    def window(self, x0: int, y0: int, size: int) -> np.ndarray:
        return self.windows([x0], [y0], [size])[0]


def _margin(size: int, cfg: dict) -> int:
    """Pixels around a window that its anti-aliasing and NaN fill reach."""
    f = size / int(cfg["input_size"])
    sigma = (f - 1.0) / 2.0 if cfg["antialias"] and f > 1.0 else 0.0
    return int(np.ceil(4 * max(sigma, float(cfg["nan_fill_px"])))) + 1


def preprocess_window(image: np.ndarray, x0: int, y0: int, size: int, **kwargs) -> np.ndarray:
    """Preprocess the window (x0, y0, size) of ``image`` (C, H, W): (S, S, C) float32 in [0, 1].

    The steps run on the window plus a margin of the anti-aliasing and NaN-fill reach."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (channels, H, W), got shape {image.shape}")
    x0, y0, size = int(x0), int(y0), int(size)
    check_window(image.shape[1:], x0, y0, size)
    m = _margin(size, {**DEFAULTS, **kwargs})
    h, w = image.shape[1:]
    cx0, cy0 = max(x0 - m, 0), max(y0 - m, 0)
    cx1, cy1 = min(x0 + size + m, w), min(y0 + size + m, h)
    fp = FieldPreprocessor(image[:, cy0:cy1, cx0:cx1], **kwargs)
    return fp.window(x0 - cx0, y0 - cy0, size)


def preprocess_windows(
    image, x0s, y0s, sizes, *, progress: bool = False, threads: int = 1, **kwargs
) -> np.ndarray:
    """The windows (N, S, S, C) float32 of one field through :class:`FieldPreprocessor`."""
    del progress  # the field path is fast; kept for the callers' signature
    return FieldPreprocessor(image, threads=threads, **kwargs).windows(x0s, y0s, sizes)
