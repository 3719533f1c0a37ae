"""Completeness and purity of a cluster candidate catalogue.

Simulated sky (the truth is known):

* the truth is restricted to the area actually searched: clusters whose position lies in a
  searched nside-2 RING tile (the detections come from those tiles' pixels only);
* only true clusters above the detectability floor (truth ``SNR >= min_truth_snr``, default
  2) can be matched: a candidate beside a cluster far below detectability is a false one;
* detections and true clusters are matched one-to-one in order of truth S/N (each cluster,
  brightest first, takes the nearest free detection) within the cluster's own radius
  ``clip(theta500_scale * THETA500, min_radius, max_radius)`` arcmin
  (:class:`skydetect.clusters.scorecard.Matcher`);
* completeness = matched true clusters / true clusters, per bin of true S/N, M500 and z, with
  binomial (Wilson score, 68.27 %) intervals from :func:`astropy.stats.binom_conf_interval`;
* purity = detections matched to a true cluster / detections.

Real or simulated sky: the recovery of each known catalogue (PSZ2-, MCXC-like) in the area,
by a one-to-one match within the cross-match radius, and the counts of candidate classes.
"""

from __future__ import annotations

import logging
import math

import healpy as hp
import numpy as np
from astropy.stats import binom_conf_interval
from astropy.table import Table, vstack

from skydetect.clusters.crossmatch import class_counts, galactic, greedy_match
from skydetect.clusters.scorecard import Matcher, unit_vectors

log = logging.getLogger(__name__)

TRUTH_COLUMNS = ["GLON", "GLAT", "M500", "Z", "THETA500", "SNR"]
CURVES = {"SNR": "SNR", "M500": "M500", "Z": "Z"}
DEFAULT_BINS = {
    "SNR": [2.0, 3.0, 4.0, 4.5, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0, 100.0],
    "M500": [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0],
    "Z": [0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 3.0],
}
HEADLINE_SNR = (4.5, 6.0)
SKY_DEG2 = 4 * np.pi * np.degrees(1) ** 2


def in_tiles(glon, glat, tiles) -> np.ndarray:
    """True where (glon, glat) lies in one of the nside-2 RING ``tiles``."""
    return np.isin(hp.ang2pix(2, np.asarray(glon), np.asarray(glat), lonlat=True), list(tiles))


def binomial_fraction(k, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction k/n with its 68.27 % Wilson interval; NaN where n = 0."""
    k = np.atleast_1d(np.asarray(k, dtype=float))
    n = np.atleast_1d(np.asarray(n, dtype=float))
    frac = np.full(k.shape, np.nan)
    lo = np.full(k.shape, np.nan)
    hi = np.full(k.shape, np.nan)
    ok = n > 0
    if ok.any():
        frac[ok] = k[ok] / n[ok]
        lo[ok], hi[ok] = binom_conf_interval(k[ok], n[ok], 0.6827, interval="wilson")
    # round-off can put an end a hair on the wrong side of k/n (k = 0 or k = n)
    return frac, np.minimum(lo, frac), np.maximum(hi, frac)


def match_radius(truth: Table, scale: float, min_arcmin: float, max_arcmin: float) -> np.ndarray:
    """Per-cluster match radius in arcmin (``min_arcmin`` where THETA500 is NaN)."""
    theta = np.asarray(truth["THETA500"], dtype=float) * scale
    return np.clip(np.nan_to_num(theta, nan=min_arcmin), min_arcmin, max_arcmin)


def match_truth(candidates: Table, truth: Table, radius_arcmin) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one match in order of truth S/N: for each candidate, the index of its true
    cluster (-1) and the separation in arcmin (NaN)."""
    cv = unit_vectors(candidates, "candidates") if len(candidates) else np.zeros((0, 3))
    tv = unit_vectors(truth, "truth") if len(truth) else np.zeros((0, 3))
    idx, _ = Matcher(cv, tv, truth["SNR"], radius_arcmin).match()
    sep = np.full(len(idx), np.nan)
    ok = idx >= 0
    if ok.any():
        cos = np.clip(np.einsum("ij,ij->i", cv[ok], tv[idx[ok]]), -1, 1)
        sep[ok] = np.degrees(np.arccos(cos)) * 60.0
    return idx, sep


def completeness_curve(values, detected, bins, name: str) -> Table:
    """Completeness per bin of ``values`` (true clusters), with Wilson intervals."""
    values = np.asarray(values, dtype=float)
    detected = np.asarray(detected, dtype=bool)
    bins = np.asarray(bins, dtype=float)
    n_true = np.histogram(values, bins)[0]
    n_det = np.histogram(values[detected], bins)[0]
    frac, lo, hi = binomial_fraction(n_det, n_true)
    return Table(
        {
            "VARIABLE": [name] * (bins.size - 1),
            "BIN_LO": bins[:-1],
            "BIN_HI": bins[1:],
            "N_TRUE": n_true,
            "N_DETECTED": n_det,
            "COMPLETENESS": frac,
            "ERR_LO": frac - lo,
            "ERR_HI": hi - frac,
        }
    )


def _fraction_dict(k, n) -> dict:
    frac, lo, hi = binomial_fraction(k, n)
    return {
        "k": int(k),
        "n": int(n),
        "value": _num(frac[0]),
        "err_lo": _num(frac[0] - lo[0]),
        "err_hi": _num(hi[0] - frac[0]),
    }


def _num(x):
    """A JSON-safe float (None for NaN)."""
    x = float(x)
    return None if math.isnan(x) else x


def _known_recovery(known, candidates: Table, tiles, radius_arcmin: float) -> dict:
    """Per known catalogue: the fraction of its clusters in the area that a candidate matches."""
    out = {}
    for label, table in (known or {}).items():
        sel = table[in_tiles(table["GLON"], table["GLAT"], tiles)] if len(table) else table
        idx, _ = greedy_match(
            galactic(sel, what=label),
            galactic(candidates, what="candidates"),
            radius_arcmin,
        )
        out[label] = _fraction_dict(np.sum(idx >= 0), len(sel))
    return out


def _matched_truth(candidates: Table, area_truth: Table, radius, detectable):
    """Match the detectable truth to the candidates: (candidate index per candidate's truth
    row or -1, per truth row detected, the truth with DETECTED / CANDIDATE_ID / SEP_ARCMIN /
    MATCH_RADIUS_ARCMIN)."""
    where = np.flatnonzero(detectable)
    idx, sep = match_truth(candidates, area_truth[where], radius[where])
    idx = np.where(idx >= 0, where[np.maximum(idx, 0)], -1)
    detected = np.zeros(len(area_truth), dtype=bool)
    detected[idx[idx >= 0]] = True
    matched = area_truth.copy()
    matched["DETECTED"] = detected
    cand_id = np.full(len(area_truth), -1, dtype=np.int64)
    sep_t = np.full(len(area_truth), np.nan)
    ids = np.asarray(candidates["ID"]) if "ID" in candidates.colnames else np.arange(len(idx)) + 1
    cand_id[idx[idx >= 0]] = ids[idx >= 0]
    sep_t[idx[idx >= 0]] = sep[idx >= 0]
    matched["CANDIDATE_ID"] = cand_id
    matched["SEP_ARCMIN"] = sep_t
    matched["MATCH_RADIUS_ARCMIN"] = radius
    return idx, detected, matched


def _by_class(idx, candidates: Table) -> dict:
    """True and false positives per candidate class (known, new, spurious)."""
    # true clusters found that were not in the known catalogue: real discoveries
    is_true = idx >= 0
    cls = np.asarray(candidates["CLASS"])
    return {
        "true_positive_by_class": {
            c: int(np.sum(is_true & (cls == c))) for c in ("known", "new", "spurious")
        },
        "false_positive_by_class": {
            c: int(np.sum(~is_true & (cls == c))) for c in ("known", "new", "spurious")
        },
    }


def evaluate(
    candidates: Table,
    tiles,
    truth: Table | None = None,
    known: dict[str, Table] | None = None,
    cluster_radius_arcmin: float = 7.0,
    theta500_scale: float = 1.0,
    min_radius_arcmin: float = 5.0,
    max_radius_arcmin: float = 15.0,
    bins: dict[str, list[float]] | None = None,
    min_truth_snr: float = 2.0,
) -> tuple[dict, Table, Table | None]:
    """Evaluate ``candidates`` found in the nside-2 RING ``tiles``.

    Returns ``(summary, curves, matched_truth)``: a JSON-ready summary, the completeness
    curves (empty without truth), and the truth in the area with DETECTED / CANDIDATE_ID /
    SEP_ARCMIN columns (None without truth).
    """
    tiles = sorted(int(t) for t in tiles)
    bins = {**DEFAULT_BINS, **(bins or {})}
    inside = in_tiles(candidates["GLON"], candidates["GLAT"], tiles)
    n_outside = int(np.sum(~inside))
    if n_outside:
        log.warning(
            "%d candidate(s) lie outside the searched tiles %s: not evaluated", n_outside, tiles
        )
        candidates = candidates[inside]
    summary = {
        "mode": "simulated" if truth is not None else "real",
        "tiles": tiles,
        "area_deg2": len(tiles) * SKY_DEG2 / 48.0,
        "n_candidates": len(candidates),
        "n_outside_area": n_outside,
        "counts": class_counts(candidates),
        "known_recovery": _known_recovery(known, candidates, tiles, cluster_radius_arcmin),
    }
    if truth is None:
        return summary, completeness_curve([], [], [0.0, 1.0], "SNR")[:0], None

    missing = [c for c in TRUTH_COLUMNS if c not in truth.colnames]
    if missing:
        raise ValueError(f"truth catalogue: missing column(s) {', '.join(missing)}")
    area_truth = truth[in_tiles(truth["GLON"], truth["GLAT"], tiles)]
    radius = match_radius(area_truth, theta500_scale, min_radius_arcmin, max_radius_arcmin)
    detectable = np.asarray(area_truth["SNR"], float) >= min_truth_snr
    idx, detected, matched = _matched_truth(candidates, area_truth, radius, detectable)
    parts = [
        completeness_curve(area_truth[col], detected, bins[name], name)
        for name, col in CURVES.items()
    ]
    curves = vstack(parts)
    snr = np.asarray(area_truth["SNR"], dtype=float)
    n_tp = int(np.sum(idx >= 0))
    summary["truth"] = {
        "n_true_in_area": len(area_truth),
        "n_true_positive": n_tp,
        "n_false_positive": len(candidates) - n_tp,
        "purity": _fraction_dict(n_tp, len(candidates)),
        "completeness": {
            f"snr>{s:g}": _fraction_dict(np.sum(detected & (snr > s)), np.sum(snr > s))
            for s in HEADLINE_SNR
        },
        "min_truth_snr": min_truth_snr,
        "n_true_detectable": int(detectable.sum()),
        "match_radius": {
            "theta500_scale": theta500_scale,
            "min_arcmin": min_radius_arcmin,
            "max_arcmin": max_radius_arcmin,
        },
    }
    if "KNOWN" in area_truth.colnames and "CLASS" in candidates.colnames:
        summary["truth"].update(_by_class(idx, candidates))
    return summary, curves, matched


def format_summary(run: str, summary: dict) -> str:
    """A short plain-text table of the headline numbers."""

    def frac(d):
        if d["value"] is None:
            return f"    -    (0/{d['n']})"
        return f"{d['value']:.3f} +{d['err_hi']:.3f}/-{d['err_lo']:.3f} ({d['k']}/{d['n']})"

    lines = [
        f"run {run}: {summary['n_candidates']} candidates over {summary['area_deg2']:.0f} deg2 "
        f"(tiles {summary['tiles']}, {summary['mode']} sky)",
        "  counts: " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()),
    ]
    for label, d in summary["known_recovery"].items():
        lines.append(f"  {label} recovered: {frac(d)}")
    if "truth" in summary:
        t = summary["truth"]
        lines.append(f"  purity:               {frac(t['purity'])}")
        for key, d in t["completeness"].items():
            lines.append(f"  completeness {key:<8}: {frac(d)}")
    return "\n".join(lines)


COMPARISON_COLUMNS = [
    "RUN",
    "QUANTITY",
    "BIN_LO",
    "BIN_HI",
    "N_TRUE",
    "N_DETECTED",
    "VALUE",
    "ERR_LO",
    "ERR_HI",
]


def comparison_table(summaries: dict[str, dict], curves: dict[str, Table]) -> Table:
    """One long table of every run: completeness per true-S/N bin (``completeness_snr``),
    purity, headline completeness, known-catalogue recovery and candidate counts."""
    rows = []
    nan = float("nan")

    def frac_row(run, q, d):
        v = nan if d["value"] is None else d["value"]
        lo = nan if d["err_lo"] is None else d["err_lo"]
        hi = nan if d["err_hi"] is None else d["err_hi"]
        rows.append((run, q, nan, nan, d["n"], d["k"], v, lo, hi))

    for run, summary in summaries.items():
        c = curves.get(run)
        if c is not None and len(c):
            for r in c[c["VARIABLE"] == "SNR"]:
                rows.append(
                    (run, "completeness_snr", r["BIN_LO"], r["BIN_HI"], r["N_TRUE"],
                     r["N_DETECTED"], r["COMPLETENESS"], r["ERR_LO"], r["ERR_HI"])
                )  # fmt: skip
        t = summary.get("truth")
        if t:
            frac_row(run, "purity", t["purity"])
            for key, d in t["completeness"].items():
                frac_row(run, f"completeness_{key}", d)
        for label, d in summary.get("known_recovery", {}).items():
            frac_row(run, f"recovered_{label}", d)
        n = summary["n_candidates"]
        rows.append((run, "n_candidates", nan, nan, n, n, float(n), nan, nan))
        for cls, k in summary["counts"].items():
            rows.append((run, f"n_{cls}", nan, nan, n, k, float(k), nan, nan))
    if not rows:
        return Table(
            names=COMPARISON_COLUMNS, dtype=[str, str] + [float] * 2 + [int] * 2 + [float] * 3
        )
    return Table(rows=rows, names=COMPARISON_COLUMNS)
