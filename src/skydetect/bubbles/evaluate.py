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

``F2 = 5 P R / (4 P + R)``. Counts (not ratios) are returned so that tiles can be summed.
:func:`evaluation_summary` gives both rules with Clopper-Pearson 95 % intervals and recall per
MajAxis bin, the IoU rule as the headline; :mod:`skydetect.bubbles.chance` their chance rates.
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
    """Per-box outcome of one mosaic/tile.

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
    """Detection counts of one mosaic/tile.

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


def best_threshold(tiles, thresholds, **kw) -> tuple[float, float, list]:
    """Score threshold maximising the summed-count F2 over ``tiles``.

    ``tiles`` is a list of ``(pred, scores, truth, recall_mask)``; returns ``(threshold, f2,
    table)`` with ``table`` a list of ``(threshold, Counts)``. Ties go to the higher threshold.
    """
    table = []
    for thr in thresholds:
        c = Counts()
        for pred, scores, truth, mask in tiles:
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


SIZE_BINS = ((0.0, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, float("inf")))  # MajAxis, arcmin


def _bin_name(lo: float, hi: float) -> str:
    if lo <= 0:
        return f"<{hi:g}"
    return f">{lo:g}" if not np.isfinite(hi) else f"{lo:g}-{hi:g}"


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval of a binomial proportion k / n."""
    from scipy.stats import beta  # lazy: scipy.stats takes ~0.7 s to import, used only here

    if n <= 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo = 0.0 if k <= 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def proportion(k: int, n: int, level: float = 0.95) -> dict:
    """``{k, n, value, lo, hi}`` with the Clopper-Pearson interval (None where n = 0)."""
    if n <= 0:
        return {"k": int(k), "n": 0, "value": None, "lo": None, "hi": None}
    lo, hi = clopper_pearson(int(k), int(n), level)
    return {"k": int(k), "n": int(n), "value": k / n, "lo": lo, "hi": hi}


def _rule_flags(detections, truth, rule, min_cover, iou_threshold):
    """Per-rule outcome over the fields: found flags and MajAxis of the clear bubbles, hits,
    scored boxes (boxes on unclear bubbles only excluded) and the unclear-bubble counts."""
    found_c, maj_c = [], []
    n_hit = n_scored = n_unclear = n_unclear_found = n_pred_unclear = 0
    for field, (boxes, scores) in sorted(detections.items()):
        t = truth[field]
        clear = np.asarray(t["clear"], bool)
        found, hit, dont_care, _ = match_flags(
            boxes, scores, t["boxes"], clear, rule, min_cover, iou_threshold
        )
        found_c.append(found[clear])
        maj_c.append(np.asarray(t["maj_arcmin"], float)[clear])
        n_hit += int(hit.sum())
        n_scored += int((~dont_care).sum())
        n_unclear += int((~clear).sum())
        n_unclear_found += int(found[~clear].sum())
        n_pred_unclear += int(dont_care.sum())
    found_c = np.concatenate(found_c) if found_c else np.zeros(0, bool)
    maj_c = np.concatenate(maj_c) if maj_c else np.zeros(0)
    unclear = {"n": n_unclear, "found": n_unclear_found, "detections": n_pred_unclear}
    return found_c, maj_c, n_hit, n_scored, unclear


def evaluation_summary(
    detections: dict,
    truth: dict,
    min_cover: float = 1 / 3,
    size_bins=SIZE_BINS,
    level: float = 0.95,
    iou_threshold: float = 0.5,
) -> dict:
    """Test-set scores under both rules, with 95 % intervals; the IoU rule is the headline.

    ``detections``: field -> (boxes, scores); ``truth``: field -> dict with ``boxes``,
    ``clear`` and ``maj_arcmin``. Returns, as :func:`proportion`: ``recall_clear_iou`` and
    ``precision_iou`` (one-to-one at IoU >= ``iou_threshold``), ``recall_clear`` and
    ``precision`` (the reference rule, the paper's), boxes on unclear bubbles only excluded
    from both precisions; ``recall_by_size`` and ``recall_by_size_iou`` (MajAxis bins in
    arcmin) and ``unclear`` (unclear bubbles, how many found, boxes on them; reference rule).
    """
    missing = sorted(set(detections) - set(truth))
    if missing:
        raise ValueError(f"no truth/catalogue boxes for field(s) {', '.join(missing)}")
    out = {
        "headline_rule": "iou",
        "reference_rule": "paper (Nishimoto et al. 2025)",
        "iou_threshold": iou_threshold,
        "min_cover": min_cover,
        "level": level,
    }
    for rule, tag in (("iou", "_iou"), ("reference", "")):
        found_c, maj_c, n_hit, n_scored, unclear = _rule_flags(
            detections, truth, rule, min_cover, iou_threshold
        )
        by_size = {}
        for lo, hi in size_bins:
            b = (maj_c >= lo) & (maj_c < hi)
            by_size[_bin_name(lo, hi)] = proportion(found_c[b].sum(), b.sum(), level)
        out[f"recall_clear{tag}"] = proportion(found_c.sum(), len(found_c), level)
        out[f"precision{tag}"] = proportion(n_hit, n_scored, level)
        out[f"recall_by_size{tag}"] = by_size
    out["unclear"] = unclear
    return out


def _fmt_proportion(name: str, p: dict) -> str:
    if not p["n"]:
        return f"{name:<34} {p['k']:>4d} / {p['n']:<4d}      -"
    return (
        f"{name:<34} {p['k']:>4d} / {p['n']:<4d} {p['value']:6.3f}  [{p['lo']:.3f}, {p['hi']:.3f}]"
    )


def _fmt_chance(name: str, c: dict | None) -> list[str]:
    if not c or c["value"] is None:
        return []
    return [
        f"{name:<34} {c['value']:>18.3f}  [{c['lo']:.3f}, {c['hi']:.3f}] "
        f"(mean of {c['draws']} draws, 16-84 % range)"
    ]


def format_summary(summary: dict) -> str:
    """Lines of :func:`evaluation_summary` (and the chance rates where present): the IoU
    rule first, then the reference (paper's) rule, then the unclear bubbles."""
    heads = (
        f"IoU rule (headline; one-to-one at IoU >= {summary['iou_threshold']:g})",
        f"reference rule (the paper's; a box covers >= {summary['min_cover']:.3g} of the "
        "bubble's box)",
    )
    lines = []
    for head, tag, rule in zip(heads, ("_iou", ""), ("iou", "reference"), strict=True):
        lines.append(head)
        lines.append(_fmt_proportion("  recall (clear)", summary[f"recall_clear{tag}"]))
        for name, p in summary[f"recall_by_size{tag}"].items():
            lines.append(_fmt_proportion(f"    MajAxis {name}'", p))
        lines.append(_fmt_proportion("  precision (unclear excl.)", summary[f"precision{tag}"]))
        lines += _fmt_chance("  chance recall (random boxes)", summary.get(f"chance_recall_{rule}"))
        lines += _fmt_chance(
            "  chance precision (random boxes)", summary.get(f"chance_precision_{rule}")
        )
    u = summary["unclear"]
    lines.append(
        f"unclear bubbles (reference rule): {u['found']} of {u['n']} found; {u['detections']} "
        "detections on unclear bubbles only (neither hit nor false positive)"
    )
    return "\n".join(lines)


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
