"""Calibrated probability that a cluster candidate is real, from its detector scores.

A U-Net's PEAK_PROB (trained with a focal loss) and the MMF's SNR rank candidates but are
not probabilities of being real. On the validation candidates, matched to the truth
(``IS_TRUE``), each detector gets a monotone map score -> P(real):

- U-Net runs (score ``PEAK_PROB``) and ``mmf`` (score ``SNR``): isotonic regression
  (scikit-learn ``IsotonicRegression``, increasing, clipped to [0, 1] and, outside the fitted
  score range, to the end values: ``out_of_bounds="clip"``). Stored as its knots; applied by
  linear interpolation between them (what ``IsotonicRegression.predict`` does).
- ``combined`` (a U-Net run merged with the MMF, column ``DETECTORS``: ``both``, ``unet``,
  ``mmf`` as rule combine_candidates writes it, or the finding runs joined by ``+`` such as
  ``unet_hfi+mmf``): a logistic regression on which detectors found the candidate (three
  exclusive indicators: U-Net only, MMF only, both, with no separate intercept) and on the
  scores that exist (PEAK_PROB where a U-Net found it, SNR where the MMF did; a missing score,
  NaN in the table, enters as 0 beside its zero indicator). A score whose fitted weight comes
  out negative is dropped and the model refitted, so P(real) never falls as a score rises.

A calibration is a plain dict, written as JSON (no pickles) and read back by
:func:`apply_calibration`, which gives values in [0, 1], non-decreasing in each score.

Degenerate fits (documented fallback, never an error): with no candidates, or with candidates
all true or all false, the calibration is the constant (k + 1/2) / (n + 1) (the Jeffreys
estimate of the truth rate; 1/2 with no candidates), marked ``"fallback"`` in the JSON.

:func:`expected_calibration_error` bins candidates in equal-count bins of the predicted
probability (sorted, split into ``n_bins`` groups that differ by at most one candidate) and
returns sum_b (n_b / N) |mean predicted_b - fraction true_b|. :func:`evaluate` gives it two
yardsticks: a 95 % spatial block-bootstrap interval (nside-8 HEALPix blocks of the tiles that
hold the candidates, as the scorecard's, :mod:`skydetect.clusters.heldout`), and the ECE a
perfectly calibrated P(real) would show on the same candidates, from labels drawn as
Bernoulli(P(real)) (consistency resampling, Broecker & Smith 2007, Weather Forecast. 22, 651):
with ~50 candidates a bin, binomial noise alone gives an ECE of a few per cent.
"""

from __future__ import annotations

import json
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.table import Table
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from skydetect.clusters import heldout as H
from skydetect.clusters.scorecard import score_column
from skydetect.io.atomic import atomic_path

FORMAT_VERSION = 1
COMBINED = "combined"
MMF = "mmf"
# the combined model's features, in the order of its coefficients
MEMBERSHIP = ("UNET_ONLY", "MMF_ONLY", "BOTH")
SCORES = ("PEAK_PROB", "SNR")
# inverse regularisation strength of the combined logistic model (nearly unregularised; the
# small penalty keeps a separable training set finite)
LOGISTIC_C = 100.0


class CalibrationError(ValueError):
    """A candidate table or calibration file that cannot be fitted or applied."""


def _column(table: Table, name: str, where: str = "candidate table") -> np.ndarray:
    if name not in table.colnames:
        raise CalibrationError(
            f"{where}: column {name!r} missing (columns: {', '.join(table.colnames)})"
        )
    col = table[name]
    if np.any(getattr(col, "mask", False)):  # a masked (missing) score is NaN
        if col.dtype.kind != "f":
            raise CalibrationError(f"{where}: column {name!r} has missing (masked) values")
        return np.asarray(col.filled(np.nan))
    return np.asarray(col)


def truth_labels(table: Table, where: str = "candidate table") -> np.ndarray:
    """``IS_TRUE`` as a bool array."""
    values = _column(table, "IS_TRUE", where)
    if values.dtype.kind != "b":
        raise CalibrationError(f"{where}: column 'IS_TRUE' must be boolean, got {values.dtype}")
    return values.astype(bool)


def _finite_score(table: Table, name: str, where: str) -> np.ndarray:
    score = _column(table, name, where).astype(float)
    bad = ~np.isfinite(score)
    if bad.any():
        raise CalibrationError(
            f"{where}: column {name!r} has {int(bad.sum())} non-finite values"
        )
    return score


def _fallback_rate(is_true: np.ndarray) -> float:
    return float((is_true.sum() + 0.5) / (is_true.size + 1.0))


def _degenerate(is_true: np.ndarray) -> str | None:
    if is_true.size == 0:
        return "no candidates"
    if is_true.all():
        return "all candidates true"
    if not is_true.any():
        return "all candidates false"
    return None


# --------------------------------------------------------------------------- membership
def membership(detectors, where: str = "candidate table") -> np.ndarray:
    """(n, 3) float indicators UNET_ONLY, MMF_ONLY, BOTH of ``DETECTORS`` strings: ``both``,
    or runs joined by ``+`` such as ``unet_hfi+mmf`` (``mmf`` is the MMF; any other name,
    ``unet`` included, a U-Net run)."""
    rows = []
    for i, value in enumerate(np.asarray(detectors, dtype=str)):
        value = value.strip()
        names = ["unet", MMF] if value == "both" else [n for n in value.split("+") if n]
        if not names:
            raise CalibrationError(f"{where}: row {i}: column 'DETECTORS' is empty")
        has_mmf = MMF in names
        has_unet = any(n != MMF for n in names)
        rows.append((has_unet and not has_mmf, has_mmf and not has_unet, has_unet and has_mmf))
    return np.asarray(rows, dtype=float).reshape(-1, len(MEMBERSHIP))


def combined_features(table: Table, where: str = "candidate table") -> np.ndarray:
    """(n, 5) features of the combined model: the membership indicators, then PEAK_PROB and
    SNR (0 where the score is NaN, i.e. its detector did not find the candidate)."""
    member = membership(_column(table, "DETECTORS", where), where)
    scores = []
    presence = (member[:, 0] + member[:, 2], member[:, 1] + member[:, 2])  # U-Net, MMF
    for name, present in zip(SCORES, presence, strict=True):
        score = _column(table, name, where).astype(float)
        if np.isinf(score).any():
            raise CalibrationError(f"{where}: column {name!r} has infinite values")
        missing = (present > 0) & np.isnan(score)
        if missing.any():
            raise CalibrationError(
                f"{where}: {int(missing.sum())} rows have no {name} although DETECTORS "
                "names the detector that gives it"
            )
        scores.append(np.where(present > 0, np.nan_to_num(score, nan=0.0), 0.0))
    return np.column_stack([member, *scores])


# --------------------------------------------------------------------------- fitting
def fit_isotonic(score: np.ndarray, is_true: np.ndarray) -> dict:
    """Knots ``x`` (score) and ``y`` (P(real)) of the increasing isotonic fit."""
    score = np.asarray(score, float)
    is_true = np.asarray(is_true, bool)
    reason = _degenerate(is_true)
    if reason is not None:
        rate = _fallback_rate(is_true)
        x = [float(score.min()), float(score.max())] if score.size else [0.0, 1.0]
        return {"x": x, "y": [rate, rate], "fallback": reason}
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(score, is_true.astype(float))
    return {
        "x": [float(v) for v in iso.X_thresholds_],
        "y": [float(v) for v in iso.y_thresholds_],
        "fallback": None,
    }


def fit_logistic(features: np.ndarray, is_true: np.ndarray) -> dict:
    """Coefficients (one per feature, no intercept) of the combined model; negative score
    weights are dropped (set to 0) and the rest refitted."""
    is_true = np.asarray(is_true, bool)
    n_member = len(MEMBERSHIP)
    reason = _degenerate(is_true)
    if reason is not None:
        rate = _fallback_rate(is_true)
        logit = float(np.log(rate / (1.0 - rate)))
        return {"coef": [logit] * n_member + [0.0] * len(SCORES), "fallback": reason}
    keep = list(range(features.shape[1]))
    while True:
        model = LogisticRegression(C=LOGISTIC_C, fit_intercept=False, max_iter=1000)
        model.fit(features[:, keep], is_true)
        coef = np.zeros(features.shape[1])
        coef[keep] = model.coef_[0]
        negative = [i for i in keep if i >= n_member and coef[i] < 0]
        if not negative:
            return {"coef": [float(c) for c in coef], "fallback": None}
        keep = [i for i in keep if i not in negative]


def fit_calibration(detector: str, table: Table, where: str = "candidate table") -> dict:
    """The calibration of ``detector`` fitted on matched candidates ``table`` (``IS_TRUE``
    and the detector's score columns); a JSON-serialisable dict."""
    is_true = truth_labels(table, where)
    out = {"version": FORMAT_VERSION, "detector": detector, "n_fit": int(is_true.size),
           "n_true": int(is_true.sum())}  # fmt: skip
    if detector == COMBINED:
        fit = fit_logistic(combined_features(table, where), is_true)
        return {**out, "method": "logistic", "features": [*MEMBERSHIP, *SCORES], **fit}
    column = score_column(detector)
    fit = fit_isotonic(_finite_score(table, column, where), is_true)
    return {**out, "method": "isotonic", "score": column, **fit}


# --------------------------------------------------------------------------- applying
def apply_calibration(calibration: dict, table) -> np.ndarray:
    """P(real) in [0, 1] of every row of ``table`` (an astropy Table or a mapping of
    columns) under ``calibration`` (:func:`fit_calibration`, or its JSON read back)."""
    if not isinstance(table, Table):
        table = Table(dict(table))
    where = f"calibration of {calibration.get('detector', '?')}"
    method = calibration.get("method")
    if method == "isotonic":
        score = _finite_score(table, calibration["score"], where)
        x = np.asarray(calibration["x"], float)
        y = np.asarray(calibration["y"], float)
        return np.clip(np.interp(score, x, y), 0.0, 1.0)
    if method == "logistic":
        if list(calibration["features"]) != [*MEMBERSHIP, *SCORES]:
            raise CalibrationError(f"{where}: unknown features {calibration['features']}")
        z = combined_features(table, where) @ np.asarray(calibration["coef"], float)
        return 1.0 / (1.0 + np.exp(-z))
    raise CalibrationError(f"{where}: unknown method {method!r} (isotonic or logistic)")


# --------------------------------------------------------------------------- ECE
def _equal_count_bins(prob: np.ndarray, n_bins: int) -> list[np.ndarray]:
    order = np.argsort(prob, kind="stable")
    return [b for b in np.array_split(order, min(n_bins, prob.size)) if b.size]


def expected_calibration_error(prob, is_true, n_bins: int = 10) -> float:
    """ECE in equal-count bins of ``prob``; NaN with no candidates."""
    prob = np.asarray(prob, float)
    is_true = np.asarray(is_true, bool)
    if prob.size == 0:
        return float("nan")
    total = 0.0
    for idx in _equal_count_bins(prob, n_bins):
        total += idx.size * abs(prob[idx].mean() - is_true[idx].mean())
    return float(total / prob.size)


def ece_interval(prob, is_true, weights, n_bins: int = 10, level: float = 0.95):
    """Central ``level`` interval of the ECE over bootstrap resamples: ``weights`` (B, N)
    says how often each candidate is drawn in each resample (rows repeated that often)."""
    prob = np.asarray(prob, float)
    is_true = np.asarray(is_true, bool)
    rows = np.arange(prob.size)
    eces = []
    for w in np.asarray(weights, np.int64):
        idx = np.repeat(rows, w)
        eces.append(expected_calibration_error(prob[idx], is_true[idx], n_bins))
    return H.interval(eces, level)


def ece_if_calibrated(prob, rng, n_bins: int = 10, n_draws: int = 2000) -> np.ndarray:
    """``n_draws`` ECEs of ``prob`` against labels drawn as Bernoulli(``prob``): the ECE of a
    perfectly calibrated probability on these candidates (its sampling floor)."""
    prob = np.asarray(prob, float)
    labels = rng.random((n_draws, prob.size)) < prob[None, :]
    return np.array([expected_calibration_error(prob, lab, n_bins) for lab in labels])


def _block_resamples(table: Table, n_bootstrap: int, rng) -> np.ndarray:
    """(n_bootstrap, N) block-bootstrap weights of the rows of ``table``: nside-8 blocks of
    the nside-2 tiles that hold its rows, drawn with replacement; without ``GLON``/``GLAT``
    columns, the rows one by one."""
    if len(table) == 0 or "GLON" not in table.colnames or "GLAT" not in table.colnames:
        return H.block_draws(len(table), n_bootstrap, rng)  # each row its own block
    lon, lat = np.asarray(table["GLON"], float), np.asarray(table["GLAT"], float)
    blocks = H.area_blocks(np.unique(hp.ang2pix(H.TILE_NSIDE, lon, lat, lonlat=True)))
    draws = H.block_draws(len(blocks), n_bootstrap, rng)
    return H.block_weights(draws, H.block_index(table, blocks, "calibration candidates"))


def reliability_curve(prob, is_true, n_bins: int = 10) -> Table:
    """Per equal-count bin: ``P_MEAN`` (mean predicted), ``TRUE_FRACTION``, ``N``."""
    prob = np.asarray(prob, float)
    is_true = np.asarray(is_true, bool)
    bins = _equal_count_bins(prob, n_bins) if prob.size else []
    return Table(
        {
            "P_MEAN": [float(prob[b].mean()) for b in bins],
            "TRUE_FRACTION": [float(is_true[b].mean()) for b in bins],
            "N": [int(b.size) for b in bins],
        },
        dtype=(float, float, int),
    )


# --------------------------------------------------------------------------- files
def write_calibration(path, calibration: dict) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(calibration, indent=2) + "\n")


def read_calibration(path) -> dict:
    path = Path(path)
    try:
        calibration = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CalibrationError(f"{path}: cannot read the calibration ({err})") from err
    if calibration.get("version") != FORMAT_VERSION:
        raise CalibrationError(
            f"{path}: calibration format version {calibration.get('version')!r}, "
            f"expected {FORMAT_VERSION} (rerun rule calibrate)"
        )
    return calibration


def read_matched_candidates(path) -> Table:
    """A matched_candidates.ecsv table (candidate columns, ``IS_TRUE``, ``TRUTH_ID``)."""
    try:
        table = Table.read(path, format="ascii.ecsv")
    except (OSError, ValueError) as err:
        raise CalibrationError(f"{path}: cannot read the matched candidates ({err})") from err
    truth_labels(table, str(path))
    return table


EVALUATION_COLUMNS = (
    ("DETECTOR", str, "detector"),
    ("ECE", float, "expected calibration error, {n_bins} equal-count bins"),
    ("N", int, "test candidates"),
    ("ECE_LO95", float, "2.5th percentile of the ECE, spatial block bootstrap"),
    ("ECE_HI95", float, "97.5th percentile of the ECE, spatial block bootstrap"),
    ("ECE_CALIBRATED", float,
     "median ECE of a perfectly calibrated P(real) on these candidates (labels drawn from it)"),
    ("ECE_CALIBRATED_HI95", float, "95th percentile of that ECE"),
    ("MEAN_P_REAL", float, "mean calibrated P(real) of the test candidates"),
    ("TRUE_FRACTION", float, "fraction of the test candidates that are true"),
    ("TRUE_FRACTION_FIT", float,
     "fraction true among the candidates the calibration was fitted on (validation tiles)"),
)  # fmt: skip


def evaluate(calibrations: dict, tables: dict, n_bins: int = 10, n_bootstrap: int = 200,
             seed: int = 0) -> tuple[Table, dict]:  # fmt: skip
    """``DETECTOR ECE N`` of every detector's calibrated test candidates, with the ECE's
    yardsticks (:data:`EVALUATION_COLUMNS`: its 95 % block-bootstrap interval from
    ``n_bootstrap`` resamples, and the ECE of a perfectly calibrated P(real) on the same
    candidates) and what shifts a calibration between the candidates it was fitted on and
    those it is scored on: ``MEAN_P_REAL`` (mean calibrated P on test), ``TRUE_FRACTION``
    (fraction true on test) and ``TRUE_FRACTION_FIT`` (on the fitted candidates, the
    validation tiles); and the reliability curves (:func:`reliability_curve`) by detector."""
    rows, curves = [], {}
    for detector, table in tables.items():
        rng = np.random.default_rng([int(seed), len(rows)])
        is_true = truth_labels(table, f"{detector} test candidates")
        fit = calibrations[detector]
        prob = apply_calibration(fit, table)
        fit_fraction = fit["n_true"] / fit["n_fit"] if fit.get("n_fit") else float("nan")
        weights = _block_resamples(table, n_bootstrap, rng)
        null = ece_if_calibrated(prob, rng, n_bins) if prob.size else [np.nan]
        rows.append((detector, expected_calibration_error(prob, is_true, n_bins), len(table),
                     *ece_interval(prob, is_true, weights, n_bins),
                     float(np.median(null)), float(np.percentile(null, 95)),
                     float(prob.mean()) if prob.size else float("nan"),
                     float(is_true.mean()) if is_true.size else float("nan"),
                     float(fit_fraction)))  # fmt: skip
        curves[detector] = reliability_curve(prob, is_true, n_bins)
    names = [c[0] for c in EVALUATION_COLUMNS]
    out = Table(rows=rows or None, names=names, dtype=[c[1] for c in EVALUATION_COLUMNS])
    for name, _, text in EVALUATION_COLUMNS[1:]:
        out[name].description = text.format(n_bins=n_bins)
    out.meta["n_bootstrap"] = int(n_bootstrap)
    return out, curves
