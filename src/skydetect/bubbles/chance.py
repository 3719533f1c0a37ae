"""Chance rate of the bubble scores: what boxes placed at random would score.

For each field, the detections' own boxes (their widths and heights, and their scores, which
order the one-to-one IoU matching) are placed at uniformly random positions inside the field's
coverage — the pixels with finite 8 µm data — and scored by the same rules as the detections
(:func:`skydetect.bubbles.evaluate.match_flags`). A random box's position is drawn uniformly
among those that keep it inside the field's bounding frame (on a side where the box is larger
than the field, among those that keep the field inside the box); a position whose box centre falls on an uncovered pixel is drawn again.
Counts are summed over the fields per draw; the chance recall (clear bubbles) and precision
(boxes on unclear bubbles only excluded) are the mean over the seeded draws, with the 16-84 %
range across draws.
"""

from __future__ import annotations

import numpy as np

from .evaluate import match_flags

MAX_TRIES = 1000  # rejection rounds before a field's coverage is called too small


def _start_range(extent: int, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest box start along one axis: the box inside the frame, or (larger than
    the frame) the frame inside the box."""
    span = extent - side
    return np.minimum(span, 0.0), np.maximum(span, 0.0)


def random_boxes(boxes, coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``boxes`` (N, 4) with their sizes kept, moved to random positions inside ``coverage``.

    ``coverage`` is the field's (H, W) boolean map of pixels with data. Raises ValueError
    when it has no covered pixel or the positions keep missing it.
    """
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    cov = np.asarray(coverage, bool)
    if cov.ndim != 2:
        raise ValueError(f"coverage must be a 2-d map, got shape {cov.shape}")
    if len(boxes) and not cov.any():
        raise ValueError("the field has no covered pixel (no finite 8 µm data)")
    h, w = cov.shape
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    (x_lo, x_hi), (y_lo, y_hi) = _start_range(w, bw), _start_range(h, bh)
    out = np.empty_like(boxes)
    todo = np.arange(len(boxes))
    for _ in range(MAX_TRIES):
        if not len(todo):
            return out
        x0 = x_lo[todo] + rng.random(len(todo)) * (x_hi[todo] - x_lo[todo])
        y0 = y_lo[todo] + rng.random(len(todo)) * (y_hi[todo] - y_lo[todo])
        cx = np.clip(np.floor(x0 + bw[todo] / 2).astype(int), 0, w - 1)
        cy = np.clip(np.floor(y0 + bh[todo] / 2).astype(int), 0, h - 1)
        ok = cov[cy, cx]
        t = todo[ok]
        out[t] = np.c_[x0[ok], y0[ok], x0[ok] + bw[t], y0[ok] + bh[t]]
        todo = todo[~ok]
    if len(todo):
        raise ValueError(
            f"{len(todo)} random boxes found no covered position in {MAX_TRIES} tries "
            f"(covered fraction {cov.mean():.2g})"
        )
    return out


def _draw_counts(detections, truth, coverage, rng, rule, min_cover, iou_threshold):
    """(found clear, clear, hits, scored boxes) of one random draw summed over the fields."""
    found = n_clear = hits = scored = 0
    for field, (boxes, scores) in sorted(detections.items()):
        t = truth[field]
        clear = np.asarray(t["clear"], bool)
        rand = random_boxes(boxes, coverage[field], rng)
        f, hit, dont_care, _ = match_flags(
            rand, scores, t["boxes"], clear, rule, min_cover, iou_threshold
        )
        found += int(f[clear].sum())
        n_clear += int(clear.sum())
        hits += int(hit.sum())
        scored += int((~dont_care).sum())
    return found, n_clear, hits, scored


def _spread(values: list[float], draws: int) -> dict:
    """``{value, lo, hi, draws}``: mean and 16-84 % range of the finite per-draw values."""
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if not len(v):
        return {"value": None, "lo": None, "hi": None, "draws": draws}
    lo, hi = np.percentile(v, [16, 84])
    return {"value": float(v.mean()), "lo": float(lo), "hi": float(hi), "draws": draws}


def chance_rates(
    detections: dict,
    truth: dict,
    coverage: dict,
    draws: int = 20,
    seed: int = 0,
    min_cover: float = 1 / 3,
    iou_threshold: float = 0.5,
) -> dict:
    """Chance recall and precision of both rules over ``draws`` seeded random placements.

    ``detections``: field -> (boxes, scores); ``truth``: field -> dict with ``boxes`` and
    ``clear``; ``coverage``: field -> (H, W) bool map of covered pixels. Returns
    ``chance_recall_iou``, ``chance_recall_reference``, ``chance_precision_iou`` and
    ``chance_precision_reference``, each ``{value, lo, hi, draws}`` (None where undefined).
    """
    if draws < 1:
        raise ValueError(f"chance draws must be >= 1, got {draws}")
    for what, d in (("truth/catalogue boxes", truth), ("coverage map", coverage)):
        missing = sorted(set(detections) - set(d))
        if missing:
            raise ValueError(f"no {what} for field(s) {', '.join(missing)}")
    out = {}
    for rule in ("iou", "reference"):
        rng = np.random.default_rng([seed, 0 if rule == "iou" else 1])
        recall, precision = [], []
        for _ in range(draws):
            found, n, hits, scored = _draw_counts(
                detections, truth, coverage, rng, rule, min_cover, iou_threshold
            )
            recall.append(found / n if n else float("nan"))
            precision.append(hits / scored if scored else float("nan"))
        out[f"chance_recall_{rule}"] = _spread(recall, draws)
        out[f"chance_precision_{rule}"] = _spread(precision, draws)
    return out
