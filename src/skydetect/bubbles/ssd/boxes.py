"""Box conversions, SSD encoding with variances, IoU, matching (with "don't care" priors over
unclear bubbles) and non-maximum suppression.

Encoding (Liu et al. 2016, with the usual variances ``(0.1, 0.2)``) of a ground-truth box ``g``
against a prior ``p`` (centre form)::

    t_x = (g_cx - p_cx) / (p_w * v0)       t_w = log(g_w / p_w) / v1
    t_y = (g_cy - p_cy) / (p_h * v0)       t_h = log(g_h / p_h) / v1

:func:`decode` is its exact inverse. NMS uses ``tf.image.non_max_suppression``.
"""

from __future__ import annotations

import numpy as np

import skydetect  # noqa: F401  (legacy Keras switch before TensorFlow)

VARIANCES = (0.1, 0.2)


def to_corners(b: np.ndarray) -> np.ndarray:
    """Centre form ``(cx, cy, w, h)`` -> corner form ``(x0, y0, x1, y1)``."""
    b = np.asarray(b, dtype=np.float64)
    half = b[..., 2:] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def to_centre(b: np.ndarray) -> np.ndarray:
    """Corner form ``(x0, y0, x1, y1)`` -> centre form ``(cx, cy, w, h)``."""
    b = np.asarray(b, dtype=np.float64)
    return np.concatenate([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], axis=-1)


def encode(gt_centre: np.ndarray, priors: np.ndarray, variances=VARIANCES) -> np.ndarray:
    """Regression targets (N, 4) of boxes ``gt_centre`` (N, 4) against ``priors`` (N, 4)."""
    g = np.asarray(gt_centre, dtype=np.float64)
    p = np.asarray(priors, dtype=np.float64)
    v0, v1 = variances
    txy = (g[:, :2] - p[:, :2]) / (p[:, 2:] * v0)
    twh = np.log(g[:, 2:] / p[:, 2:]) / v1
    return np.concatenate([txy, twh], axis=1).astype(np.float32)


def decode(loc: np.ndarray, priors: np.ndarray, variances=VARIANCES) -> np.ndarray:
    """Boxes in centre form from regression outputs ``loc`` (..., N, 4); inverse of :func:`encode`."""
    t = np.asarray(loc, dtype=np.float64)
    p = np.asarray(priors, dtype=np.float64)
    v0, v1 = variances
    cxy = p[..., :2] + t[..., :2] * v0 * p[..., 2:]
    wh = p[..., 2:] * np.exp(np.clip(t[..., 2:] * v1, -10.0, 10.0))
    return np.concatenate([cxy, wh], axis=-1)


def area(b: np.ndarray) -> np.ndarray:
    """Area of corner-form boxes (zero for empty boxes)."""
    b = np.asarray(b, dtype=np.float64)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas (Na, Nb) of corner-form boxes."""
    a = np.asarray(a, dtype=np.float64)[:, None, :]
    b = np.asarray(b, dtype=np.float64)[None, :, :]
    lo = np.maximum(a[..., :2], b[..., :2])
    hi = np.minimum(a[..., 2:], b[..., 2:])
    wh = np.clip(hi - lo, 0, None)
    return wh[..., 0] * wh[..., 1]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union (Na, Nb) of corner-form boxes."""
    inter = intersection(a, b)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


IGNORE = -1  # label of a "don't care" prior: neither bubble nor background in the loss


def match(
    gt_corners: np.ndarray,
    priors: np.ndarray,
    threshold: float = 0.5,
    variances=VARIANCES,
    ignore_corners: np.ndarray | None = None,
    ignore_cover: float = 1 / 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Assign ground-truth boxes to priors.

    A prior is positive when its IoU with some ground truth is ``>= threshold`` (it takes the
    ground truth of highest IoU); in addition, every ground truth claims its best prior, so that
    no object goes unmatched. A prior that is not positive and covers at least ``ignore_cover``
    of one of the ``ignore_corners`` boxes (unclear bubbles: the evaluation's matching rule,
    under which a box there is neither a hit nor a false positive) is labelled
    :data:`IGNORE`. Returns ``loc`` (N, 4) float32 regression targets (zeros unless positive)
    and ``labels`` (N,) int32: 1 bubble, 0 background, -1 don't care.
    """
    priors = np.asarray(priors, dtype=np.float64)
    n = len(priors)
    gt = np.asarray(gt_corners, dtype=np.float64).reshape(-1, 4)
    loc = np.zeros((n, 4), np.float32)
    labels = np.zeros(n, np.int32)
    if ignore_corners is not None and len(np.asarray(ignore_corners).reshape(-1, 4)):
        ign = np.asarray(ignore_corners, dtype=np.float64).reshape(-1, 4)
        a = area(ign)[:, None]
        cover = intersection(ign, to_corners(priors)) / np.where(a > 0, a, np.inf)
        labels[(cover >= ignore_cover - 1e-12).any(axis=0)] = IGNORE
    if len(gt) == 0:
        return loc, labels
    overlaps = iou(gt, to_corners(priors))  # (G, N)
    best_gt = overlaps.argmax(axis=0)
    best_gt_iou = overlaps.max(axis=0)
    best_prior = overlaps.argmax(axis=1)  # (G,)
    # every ground truth keeps its best prior (later ground truths win ties, as in ssd.pytorch)
    for g, p in enumerate(best_prior):
        best_gt[p] = g
        best_gt_iou[p] = 2.0
    pos = best_gt_iou >= threshold
    labels[pos] = 1
    loc[pos] = encode(to_centre(gt[best_gt[pos]]), priors[pos], variances)
    return loc, labels


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    score_threshold: float = float("-inf"),
    max_output: int | None = None,
) -> np.ndarray:
    """Indices (into ``boxes``) kept by non-maximum suppression, best score first.

    ``boxes`` are corner form (any units); uses ``tf.image.non_max_suppression`` (which wants
    ``(y0, x0, y1, x1)``; IoU is symmetric in the axes, so the order does not matter).
    """
    import tensorflow as tf  # lazy: sky-env drivers (no TF) import this module

    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    keep = tf.image.non_max_suppression(
        boxes[:, [1, 0, 3, 2]],
        scores,
        max_output_size=len(boxes) if max_output is None else int(max_output),
        iou_threshold=float(iou_threshold),
        score_threshold=float(score_threshold),
    )
    return keep.numpy().astype(np.int64)


def fuse(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float):
    """Weighted box fusion of one detector's boxes (Solovyev, Wang & Gabruseva 2021, Image
    Vis. Comput. 107, 104117): ``(fused boxes, scores)``, best first.

    Boxes are taken best score first; a box whose IoU with a fused box exceeds
    ``iou_threshold`` joins the one it overlaps most, which becomes the score-weighted mean of
    its members' corners; any other box starts a fused box of its own. A fused box keeps its
    best member's score, so that a score threshold acts on it as on the box NMS would keep."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    fused = np.zeros((len(boxes), 4))
    weighted = np.zeros((len(boxes), 4))
    weight = np.zeros(len(boxes))
    best = np.zeros(len(boxes))
    n = 0
    for i in order:
        b, s = boxes[i], scores[i]
        ov = iou(b[None], fused[:n])[0]
        j = int(np.argmax(ov)) if n else -1
        if j < 0 or ov[j] <= iou_threshold:  # a new group, led by its best box
            j, n = n, n + 1
            best[j] = s
        weighted[j] += s * b
        weight[j] += s
        fused[j] = weighted[j] / weight[j] if weight[j] > 0 else b
    return fused[:n], best[:n]
