"""Training batches of the bubble SSD: SSD targets of box lists, and one epoch's batches of
augmented bubble crops topped up with weighted negative windows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .ssd.boxes import match
from .train_settings import TrainSettings


def make_targets(
    boxes_px: Sequence[np.ndarray],
    input_size: int,
    priors,
    iou_match=0.5,
    ignore_px: Sequence[np.ndarray] | None = None,
    ignore_cover: float = 1 / 3,
):
    """SSD targets (B, N, 5) for boxes given in input pixels (one (m, 4) array per image);
    priors over the "don't care" boxes ``ignore_px`` (unclear bubbles) get label -1."""
    out = np.zeros((len(boxes_px), len(priors), 5), np.float32)
    for i, b in enumerate(boxes_px):
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4) / float(input_size)
        ign = None
        if ignore_px is not None and len(ignore_px[i]):
            ign = np.clip(np.asarray(ignore_px[i], np.float64).reshape(-1, 4) / input_size, 0, 1)
        loc, labels = match(
            np.clip(b, 0.0, 1.0), priors, iou_match, ignore_corners=ign, ignore_cover=ignore_cover
        )
        out[i, :, :4] = loc
        out[i, :, 4] = labels
    return out


def _augment_negatives(x: np.ndarray, rng) -> np.ndarray:
    k = rng.integers(0, 4, len(x))
    flip = rng.random(len(x)) < 0.5
    out = np.empty_like(x)
    for i in range(len(x)):
        a = np.rot90(x[i], k[i], axes=(0, 1))
        out[i] = a[:, ::-1] if flip[i] else a
    return out


def epoch_batches(crops, boxes, negatives, weights, settings: TrainSettings, rng, ignore=None):
    """Batches ``(inputs, boxes_px_list, dont_care_list)`` of one epoch: shuffled bubble crops
    (``ignore``: their "don't care" boxes, or None), each batch topped up with
    ``batch_negatives`` negatives drawn with probability ~ ``weights``."""
    n_b = len(crops)
    order = rng.permutation(n_b)
    n_batches = max(1, -(-n_b // settings.batch_bubbles)) if n_b else 0
    n_neg = len(negatives) if negatives is not None else 0
    need = n_batches * settings.batch_negatives if n_neg else 0
    neg_idx = np.zeros(0, int)
    if need:
        w = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("negative windows: weights must be finite with a positive sum")
        neg_idx = rng.choice(n_neg, size=need, replace=need > np.count_nonzero(w), p=w / w.sum())
    for k in range(n_batches):
        bi = order[k * settings.batch_bubbles : (k + 1) * settings.batch_bubbles]
        ni = np.sort(neg_idx[k * settings.batch_negatives : (k + 1) * settings.batch_negatives])
        parts = [np.asarray(crops)[bi]] if len(bi) else []
        bx = [boxes[i] for i in bi]
        ig = [ignore[i] if ignore is not None else np.zeros((0, 4)) for i in bi]
        if len(ni):
            parts.append(_augment_negatives(np.asarray(negatives[ni]), rng))
            bx += [np.zeros((0, 4))] * len(ni)
            ig += [np.zeros((0, 4))] * len(ni)
        yield np.concatenate(parts).astype(np.float32), bx, ig


def epoch_targets(bubbles, e):
    """``(input, boxes, dont_care)`` of one pass over the bubble crops: ``bubbles.targets(e)``
    where the generator has "don't care" boxes, else ``bubbles.epoch(e)`` with none."""
    if hasattr(bubbles, "targets"):
        yield from bubbles.targets(e)
    else:
        for x, b in bubbles.epoch(e):
            yield x, b, np.zeros((0, 4))
