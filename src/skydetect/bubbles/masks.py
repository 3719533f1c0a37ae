"""NaN discs over catalogued bubbles, so that negative windows never contain a bubble core.

The reference masks, in every band, a filled circle of radius Reff/4 around each clear
bubble; here every catalogue bubble is masked by default (``bubbles.mask.clear_only``). The input array is never modified: :func:`mask_discs` returns a copy.
"""

from __future__ import annotations

import numpy as np

from skydetect.bubbles.catalog import bubble_pixels, in_field
from skydetect.io.spitzer import SpitzerField


def disc_mask(shape: tuple[int, int], x, y, radius_px) -> np.ndarray:
    """Boolean (H, W) mask of discs: pixels whose centre lies within ``radius_px`` of (x, y).

    (x, y) are 0-based pixel centres; the pixel holding each centre is always included, so a
    disc smaller than a pixel still masks one pixel.
    """
    h, w = shape
    mask = np.zeros(shape, bool)
    x = np.atleast_1d(np.asarray(x, float))
    y = np.atleast_1d(np.asarray(y, float))
    r = np.broadcast_to(np.asarray(radius_px, float), x.shape)
    for xi, yi, ri in zip(x, y, r, strict=True):
        if not (np.isfinite(xi) and np.isfinite(yi)):
            continue
        x0, x1 = max(int(np.floor(xi - ri)), 0), min(int(np.ceil(xi + ri)) + 1, w)
        y0, y1 = max(int(np.floor(yi - ri)), 0), min(int(np.ceil(yi + ri)) + 1, h)
        if x0 < x1 and y0 < y1:
            yy, xx = np.mgrid[y0:y1, x0:x1]
            mask[y0:y1, x0:x1] |= (xx - xi) ** 2 + (yy - yi) ** 2 <= ri**2
        xc, yc = int(np.floor(xi + 0.5)), int(np.floor(yi + 0.5))
        if 0 <= xc < w and 0 <= yc < h:
            mask[yc, xc] = True
    return mask


def mask_discs(data: np.ndarray, x, y, radius_px) -> tuple[np.ndarray, np.ndarray]:
    """A float copy of ``data`` (C, H, W) with the discs set to NaN in every channel.

    Returns ``(masked, mask)``.
    """
    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"data must be (channels, H, W), got shape {data.shape}")
    mask = disc_mask(data.shape[1:], x, y, radius_px)
    out = np.array(data, dtype=np.result_type(data.dtype, np.float32), copy=True)
    out[:, mask] = np.nan
    return out, mask


def mask_field(field, catalog, radius_reff: float = 0.25, clear_only: bool = False):
    """A masked copy of a :class:`~skydetect.io.spitzer.SpitzerField` and the mask.

    Discs of ``radius_reff`` × Reff around the catalogue bubbles in the field — every one by
    default (clear and unclear: an unclear bubble is no background either), only the CLEAR
    ones with ``clear_only`` (the reference) — are NaN in both bands and set in the
    returned field's ``mask``, which negative sampling never lets into a window.
    """
    sel = in_field(catalog, field.wcs, field.shape)
    if clear_only:
        sel &= np.asarray(catalog["CLEAR"], bool)
    sub = catalog[sel]
    x, y = bubble_pixels(sub, field.wcs)
    radius = radius_reff * np.asarray(sub["Reff"], float) * 60.0 / field.pixel_arcsec
    data, mask = mask_discs(field.data, x, y, radius)
    masked = SpitzerField(
        data.astype(np.float32),
        field.wcs,
        field.pixel_arcsec,
        field.field,
        mask=mask,
        cover24=field.cover24,
    )
    return masked, mask
