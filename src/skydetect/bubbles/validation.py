"""The validation F2 of the bubble SSD: detection over the validation windows exactly as
inference does (:func:`skydetect.bubbles.detect.detect_windows`), scored with the one-to-one
IoU rule of the test scores (:func:`skydetect.bubbles.evaluate.best_threshold`, which matches
with :func:`skydetect.bubbles.evaluate.match_flags`): recall on the clear bubbles, boxes on
unclear bubbles only "don't care"; the threshold maximising F2 is chosen."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from .detect import DetectSettings, detect_windows
from .evaluate import best_threshold
from .train_data import ValidationField

log = logging.getLogger(__name__)


def validate(
    model,
    priors,
    fields: Iterable[ValidationField],
    detect: DetectSettings,
    thresholds,
    iou_threshold=0.5,
):
    """Validation F2 (one-to-one IoU rule, recall on the clear bubbles, boxes on unclear
    bubbles only "don't care") at its best threshold.

    Returns ``(threshold, counts)`` with ``counts`` a :class:`~.evaluate.Counts`.
    """
    scored = []
    for f in fields:
        b, s = detect_windows(
            model, priors, f.inputs, f.x0, f.y0, f.size, detect, field_shape=f.shape
        )
        scored.append((b, s, f.truth, f.clear))
    thr, _, table = best_threshold(scored, thresholds, rule="iou", iou_threshold=iou_threshold)
    return thr, dict(table)[thr]


def final_threshold(model, priors, validation, detect, settings, sample_f2):
    """The threshold check on every validation window with the best weights: ``(threshold,
    F2, record)``, the record holding the sample's F2 and the full pass's counts and time."""
    t0 = time.perf_counter()
    thr, counts = validate(
        model, priors, validation, detect, settings.thresholds, settings.iou_threshold
    )
    seconds = time.perf_counter() - t0
    log.info(
        "threshold check on every validation window: F2 %.3f (P %.3f R %.3f) at %.2f "
        "(sample F2 %.3f) in %.1f s",
        counts.f2, counts.precision, counts.recall, thr, sample_f2, seconds,
    )
    record = {
        "val_f2_sample": sample_f2,
        "val_precision": counts.precision,
        "val_recall": counts.recall,
        "val_windows": int(sum(len(f.x0) for f in validation)),
        "val_all_seconds": seconds,
    }
    return thr, counts.f2, record
