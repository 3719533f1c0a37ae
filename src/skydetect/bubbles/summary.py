"""The headline scores of the bubble test set: recall (overall and per MajAxis bin) and
precision under both matching rules of :mod:`skydetect.bubbles.evaluate`, with exact
(Clopper-Pearson) intervals, and their plain-text form."""

from __future__ import annotations

import numpy as np

from .evaluate import match_flags

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
