"""Default (prior) boxes of an SSD, in centre form ``(cx, cy, w, h)`` normalised to the input.

For every cell of a ``f x f`` feature map, boxes are centred on ``((j + 0.5) / f, (i + 0.5) / f)``
and have, in this order: a square of side ``s_k``, a square of side ``sqrt(s_k * s_{k+1})`` and,
for each aspect ratio ``a``, the pair ``(s_k sqrt(a), s_k / sqrt(a))`` and its transpose
(Liu et al. 2016). The order (feature map, row, column, box) matches the model's heads, which
reshape ``(B, f, f, n_boxes * 4)`` to ``(B, f*f*n_boxes, 4)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def boxes_per_location(aspect_ratios: Sequence[float]) -> int:
    """Number of default boxes per feature-map cell for these extra aspect ratios."""
    return 2 + 2 * len(aspect_ratios)


def default_boxes(
    feature_map_sizes: Sequence[int],
    scales: Sequence[float],
    aspect_ratios: Sequence[Sequence[float]],
    clip: bool = True,
) -> np.ndarray:
    """Default boxes (N, 4) in centre form, float32.

    ``scales`` has one more entry than ``feature_map_sizes``: map ``k`` uses ``scales[k]`` and
    ``scales[k + 1]`` (for its second square box). ``aspect_ratios[k]`` lists the ratios (> 1)
    of map ``k``; each adds two boxes per cell.
    """
    n = len(feature_map_sizes)
    if len(scales) != n + 1:
        raise ValueError(f"scales needs {n + 1} entries for {n} feature maps, got {len(scales)}")
    if len(aspect_ratios) != n:
        raise ValueError(f"aspect_ratios needs {n} entries, got {len(aspect_ratios)}")
    out = []
    for k, f in enumerate(feature_map_sizes):
        s, s_next = float(scales[k]), float(scales[k + 1])
        shapes = [(s, s), (np.sqrt(s * s_next),) * 2]
        for a in aspect_ratios[k]:
            r = np.sqrt(float(a))
            shapes += [(s * r, s / r), (s / r, s * r)]
        shapes = np.asarray(shapes)  # (nb, 2) w, h
        c = (np.arange(f) + 0.5) / f
        cy, cx = np.meshgrid(c, c, indexing="ij")  # row i -> y, column j -> x
        centres = np.stack([cx.ravel(), cy.ravel()], axis=-1)  # (f*f, 2)
        boxes = np.concatenate(
            [
                np.repeat(centres, len(shapes), axis=0),
                np.tile(shapes, (f * f, 1)),
            ],
            axis=1,
        )
        out.append(boxes)
    boxes = np.concatenate(out).astype(np.float32)
    if clip:
        np.clip(boxes, 0.0, 1.0, out=boxes)
    return boxes


def linear_scales(n_maps: int, s_min: float, s_max: float, first: float | None = None) -> list:
    """``n_maps + 1`` scales spaced linearly from ``s_min`` to ``s_max`` (SSD paper, eq. 4).

    With ``first`` given, map 0 uses it instead (SSD300 uses 0.1 on conv4_3), and the linear
    spacing covers maps 1..n; the extra last scale continues the spacing.
    """
    if first is None:
        return list(np.linspace(s_min, s_max, n_maps + 1))
    if n_maps == 1:
        return [first, s_min]
    step = (s_max - s_min) / (n_maps - 2) if n_maps > 2 else s_max - s_min
    return [first] + [s_min + step * k for k in range(n_maps)]
