"""How much real data lies under each detection's box: ``COVER_24`` and ``FILLED``.

``COVER_24`` is the fraction of a box's pixels with real 24 µm data (the aligned field's
24 µm coverage, :attr:`skydetect.io.spitzer.SpitzerField.coverage_24`); ``FILLED`` the
fraction the preprocessing filled over NaN (NaN in a band that has data in the field: no
coverage, saturated cores; a band without any data, as 24 µm in 8 µm-only mode, is zeroed,
not filled). A pixel belongs to a box when its centre lies inside it; the part of a box
beyond the field counts as neither covered nor real (FILLED there: the edge windows fill it).

``bubbles.detect.min_cover_24`` and ``bubbles.detect.poor_cover`` (:func:`apply_poor_cover`):
a detection with ``COVER_24`` below the threshold is flagged (``POOR_COVER`` true) or dropped.
A field without any 24 µm data (8 µm-only) is exempt: its detections are flagged only.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

POOR_COVER_MODES = ("flag", "drop")
COVERAGE_COLUMNS = ("COVER_24", "FILLED", "POOR_COVER")  # detections and survey catalogue


def box_fraction(boxes, mask: np.ndarray) -> np.ndarray:
    """Fraction of each box's pixels (pixel centres inside; at least the pixel holding its
    centre) where ``mask`` (H, W) is true; pixels beyond the field count as false."""
    b = np.asarray(boxes, float).reshape(-1, 4)
    m = np.asarray(mask, bool)
    h, w = m.shape
    sat = np.zeros((h + 1, w + 1), np.int64)  # summed-area table
    sat[1:, 1:] = np.cumsum(np.cumsum(m, axis=0), axis=1)
    # pixel i lies in [x0, x1) when x0 <= i + 0.5 < x1
    i0 = np.ceil(b[:, [0, 1]] - 0.5).astype(np.int64)
    i1 = np.maximum(np.ceil(b[:, [2, 3]] - 0.5).astype(np.int64), i0 + 1)
    n = np.prod(i1 - i0, axis=1)
    x0, x1 = np.clip(i0[:, 0], 0, w), np.clip(i1[:, 0], 0, w)
    y0, y1 = np.clip(i0[:, 1], 0, h), np.clip(i1[:, 1], 0, h)
    inside = sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]
    return inside / n


def filled_mask(data: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels NaN in some band of ``data`` (C, H, W) that has data somewhere."""
    finite = np.isfinite(np.asarray(data))
    has = finite.reshape(len(finite), -1).any(axis=1)
    return (~finite[has]).any(axis=0) if has.any() else np.zeros(finite.shape[1:], bool)


def coverage_columns(boxes, field) -> dict[str, np.ndarray]:
    """``COVER_24`` and ``FILLED`` of ``boxes`` (field pixel-edge coordinates) on ``field``
    (a :class:`skydetect.io.spitzer.SpitzerField`)."""
    return {
        "COVER_24": box_fraction(boxes, field.coverage_24),
        "FILLED": 1.0 - box_fraction(boxes, ~filled_mask(field.data)),
    }


def apply_poor_cover(table, min_cover_24: float, mode: str = "flag", has_24: bool = True):
    """``(table, keep)``: ``table`` (with ``COVER_24``) with the column ``POOR_COVER``
    (COVER_24 < min_cover_24) and the rows ``keep`` (bool) of it; ``mode`` "drop" removes the
    poorly covered rows (not in a field without 24 µm data: ``has_24`` false)."""
    if mode not in POOR_COVER_MODES:
        raise ValueError(
            f"config: bubbles.detect.poor_cover is {mode!r} ({' or '.join(POOR_COVER_MODES)})"
        )
    poor = np.asarray(table["COVER_24"], float) < float(min_cover_24)
    table["POOR_COVER"] = poor
    keep = ~poor if mode == "drop" and has_24 else np.ones(len(poor), bool)
    if poor.any():
        log.info(
            "%d of %d detections with COVER_24 < %g %s",
            poor.sum(), len(poor), min_cover_24, "dropped" if not keep.all() else "flagged",
        )
    return table[keep], keep
