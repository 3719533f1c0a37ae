"""Scoring bubble detections against a catalogue (or the mock's truth).

Two matching rules, both on boxes in one pixel frame (corner form ``x0, y0, x1, y1``):

- ``reference`` (Nishimoto et al. 2025): a catalogue bubble is *found* when some predicted box
  covers at least ``min_cover`` (1/3) of its box (the square of +-1.3 MajAxis); a predicted
  box that covers no catalogue box that much is a false positive. Recall = found / catalogue,
  precision = matched predictions / predictions. Several predictions may match one bubble.
- ``iou``: one-to-one greedy matching by decreasing score at IoU >= ``iou_threshold``.

Recall is measured on the clear bubbles (``recall_mask``); the other catalogue bubbles
(unclear) are "don't care": a predicted box matching only unclear bubbles is neither a hit nor
a false positive and leaves the precision alone (``n_pred_unclear``); the unclear bubbles found
are counted separately. The reference counted such boxes as false positives.

``F2 = 5 P R / (4 P + R)``. Counts (not ratios) are returned so that fields can be summed.
:func:`skydetect.bubbles.summary.evaluation_summary` gives both rules with Clopper-Pearson 95 %
intervals and recall per MajAxis bin, the IoU rule as the headline;
:mod:`skydetect.bubbles.chance` their chance rates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .ssd.boxes import area, intersection, iou


@dataclass
class Counts:
    n_truth: int = 0  # catalogue bubbles that count for recall (e.g. the clear ones)
    n_found: int = 0  # of those, detected
    n_pred: int = 0  # predicted boxes
    n_pred_matched: int = 0  # predicted boxes matching a recall bubble
    n_not_in_catalogue: int = 0  # predicted boxes matching no catalogue bubble at all
    n_unclear: int = 0  # catalogue bubbles outside the recall set (unclear): don't care
    n_unclear_found: int = 0  # of those, detected
    n_pred_unclear: int = 0  # predicted boxes matching only unclear bubbles: neither TP nor FP

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            *(a + b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True))
        )

    @property
    def recall(self) -> float:
        return self.n_found / self.n_truth if self.n_truth else float("nan")

    @property
    def n_pred_scored(self) -> int:
        """Predicted boxes that count for precision (those on unclear bubbles excluded)."""
        return self.n_pred - self.n_pred_unclear

    @property
    def precision(self) -> float:
        n = self.n_pred_scored
        return self.n_pred_matched / n if n else float("nan")

    @property
    def precision_catalogue(self) -> float:
        """Fraction of predictions matching any catalogue bubble (clear or not)."""
        return 1 - self.n_not_in_catalogue / self.n_pred if self.n_pred else float("nan")

    @property
    def f2(self) -> float:
        return f_beta(self.precision, self.recall, 2.0)

    def summary(self) -> dict:
        return {
            **asdict(self),
            "recall": self.recall,
            "precision_catalogue": self.precision_catalogue,
            "precision": self.precision,
            "f2": self.f2,
        }


def f_beta(precision: float, recall: float, beta: float = 2.0) -> float:
    """F-beta score; 0 when precision and recall are both 0 or undefined."""
    p = 0.0 if not np.isfinite(precision) else precision
    r = 0.0 if not np.isfinite(recall) else recall
    b2 = beta * beta
    den = b2 * p + r
    return (1 + b2) * p * r / den if den > 0 else 0.0


def _as_boxes(b) -> np.ndarray:
    return np.asarray(b, dtype=np.float64).reshape(-1, 4)


def reference_matches(pred: np.ndarray, truth: np.ndarray, min_cover: float = 1 / 3):
    """Boolean matrix (T, P): prediction p covers >= ``min_cover`` of truth box t."""
    pred, truth = _as_boxes(pred), _as_boxes(truth)
    if len(pred) == 0 or len(truth) == 0:
        return np.zeros((len(truth), len(pred)), bool)
    a = area(truth)[:, None]
    cover = intersection(truth, pred) / np.where(a > 0, a, np.inf)
    return cover >= min_cover - 1e-12


def iou_matches(pred, scores, truth, iou_threshold: float = 0.5):
    """One-to-one matching; boolean matrix (T, P) with at most one True per row and column.

    Predictions are taken by decreasing score, each matching the still-free truth box of
    highest IoU if that IoU is ``>= iou_threshold``.
    """
    pred, truth = _as_boxes(pred), _as_boxes(truth)
    m = np.zeros((len(truth), len(pred)), bool)
    if len(pred) == 0 or len(truth) == 0:
        return m
    ov = iou(truth, pred)
    free = np.ones(len(truth), bool)
    for p in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        cand = np.where(free, ov[:, p], -1.0)
        t = int(np.argmax(cand))
        if cand[t] >= iou_threshold:
            m[t, p] = True
            free[t] = False
    return m


def match_flags(
    pred,
    scores,
    truth,
    recall_mask=None,
    rule: str = "reference",
    min_cover: float = 1 / 3,
    iou_threshold: float = 0.5,
):
    """Per-box outcome of one field or mosaic.

    Returns ``(found, hit, dont_care, known)``: ``found`` (T,) whether each catalogue bubble
    is detected; ``hit`` (P,) whether each prediction matches a recall (clear) bubble;
    ``dont_care`` (P,) whether it matches only other (unclear) bubbles; ``known`` (P,) whether
    it matches any catalogue bubble. With the ``iou`` rule
    the recall bubbles are matched one-to-one, the others by IoU alone.
    """
    pred, truth = _as_boxes(pred), _as_boxes(truth)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(pred):
        raise ValueError(f"{len(pred)} boxes but {len(scores)} scores")
    sel = np.ones(len(truth), bool) if recall_mask is None else np.asarray(recall_mask, bool)
    if len(sel) != len(truth):
        raise ValueError(f"{len(truth)} catalogue boxes but {len(sel)} clear flags")
    if rule == "reference":
        m_all = reference_matches(pred, truth, min_cover)
        m = m_all[sel]
    elif rule == "iou":
        m = iou_matches(pred, scores, truth[sel], iou_threshold)
        m_all = (
            iou(truth, pred) >= iou_threshold
            if len(pred) and len(truth)
            else np.zeros((len(truth), len(pred)), bool)
        )
    else:
        raise ValueError(f"unknown matching rule {rule!r} (reference, iou)")
    found = m_all.any(axis=1)
    found[sel] = m.any(axis=1)
    hit = m.any(axis=0)
    dont_care = ~hit & m_all[~sel].any(axis=0)
    return found, hit, dont_care, m_all.any(axis=0)


def count(
    pred,
    scores,
    truth,
    recall_mask=None,
    rule: str = "reference",
    min_cover: float = 1 / 3,
    iou_threshold: float = 0.5,
) -> Counts:
    """Detection counts of one field or mosaic.

    ``truth`` holds every catalogue box; ``recall_mask`` (bool, default all) selects the ones
    recall is measured on and precision is scored against (the clear bubbles); predictions on
    the others only are "don't care" (``n_pred_unclear``). Predictions matching no catalogue
    box at all are counted in ``n_not_in_catalogue``.
    """
    pred, truth = _as_boxes(pred), _as_boxes(truth)
    found, hit, dont_care, known = match_flags(
        pred, scores, truth, recall_mask, rule, min_cover, iou_threshold
    )
    sel = np.ones(len(truth), bool) if recall_mask is None else np.asarray(recall_mask, bool)
    return Counts(
        n_truth=int(sel.sum()),
        n_found=int(found[sel].sum()),
        n_pred=len(pred),
        n_pred_matched=int(hit.sum()),
        n_not_in_catalogue=int((~known).sum()),
        n_unclear=int((~sel).sum()),
        n_unclear_found=int(found[~sel].sum()),
        n_pred_unclear=int(dont_care.sum()),
    )


def best_threshold(fields, thresholds, **kw) -> tuple[float, float, list]:
    """Score threshold maximising the summed-count F2 over ``fields``.

    ``fields`` is a list of ``(pred, scores, truth, recall_mask)``; returns ``(threshold, f2,
    table)`` with ``table`` a list of ``(threshold, Counts)``. Ties go to the higher threshold.
    """
    table = []
    for thr in thresholds:
        c = Counts()
        for pred, scores, truth, mask in fields:
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
            keep = scores >= thr
            c = c + count(_as_boxes(pred)[keep], scores[keep], truth, mask, **kw)
        table.append((float(thr), c))
    best = max(table, key=lambda tc: (tc[1].f2, tc[0]))
    return best[0], best[1].f2, table


def evaluate_fields(
    detections: dict, truth: dict, min_cover: float = 1 / 3, iou_threshold: float = 0.5
) -> dict:
    """Scores of several fields with both rules.

    ``detections``: field -> (boxes, scores); ``truth``: field -> (boxes, clear). Recall on the
    clear bubbles; ``n_not_in_catalogue`` against every catalogue bubble. Returns a dict with
    ``rules`` -> {``total``: summary, ``fields``: {field: summary}}.
    """
    missing = sorted(set(detections) - set(truth))
    if missing:
        raise ValueError(f"no truth/catalogue boxes for field(s) {', '.join(missing)}")
    out = {"min_cover": min_cover, "iou_threshold": iou_threshold, "rules": {}}
    for rule in ("iou", "reference"):
        per, total = {}, Counts()
        for field, (boxes, scores) in sorted(detections.items()):
            tb, clear = truth[field]
            c = count(
                boxes,
                scores,
                tb,
                clear,
                rule=rule,
                min_cover=min_cover,
                iou_threshold=iou_threshold,
            )
            per[field] = c.summary()
            total = total + c
        out["rules"][rule] = {"total": total.summary(), "fields": per}
    return out


def format_table(result: dict) -> str:
    """Plain-text table of :func:`evaluate_fields` (one row per rule and field): clear
    bubbles, found, recall, detections, precision (vs clear bubbles, detections on unclear
    bubbles excluded), F2, detections on unclear bubbles only ("uncl."), detections not in the
    catalogue ("new") and precision against the whole catalogue ("prec.cat")."""
    head = (
        f"{'rule':<10} {'field':<12} {'clear':>6} {'found':>6} {'recall':>7} {'dets':>6} "
        f"{'prec.':>6} {'F2':>6} {'uncl.':>5} {'new':>5} {'prec.cat':>8}"
    )
    lines = [head, "-" * len(head)]
    for rule, res in result["rules"].items():
        rows = [*res["fields"].items(), ("all", res["total"])]
        for field, s in rows:
            lines.append(
                f"{rule:<10} {field:<12} {s['n_truth']:>6d} {s['n_found']:>6d} "
                f"{s['recall']:>7.3f} {s['n_pred']:>6d} {s['precision']:>6.3f} {s['f2']:>6.3f} "
                f"{s['n_pred_unclear']:>5d} {s['n_not_in_catalogue']:>5d} "
                f"{s['precision_catalogue']:>8.3f}"
            )
    return "\n".join(lines)
