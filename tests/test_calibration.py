"""Calibrated P(real) of cluster candidates (skydetect.clusters.calibration)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from skydetect.clusters import calibration as cal


def synthetic(n, seed=0, detector="unet_hfi"):
    """Scores whose truth rate is a known function: P(true | s) = s**3 (PEAK_PROB) or a
    logistic in SNR; the raw PEAK_PROB is then badly calibrated."""
    rng = np.random.default_rng(seed)
    if detector == "mmf":
        snr = rng.uniform(3.0, 10.0, n)
        rate = 1.0 / (1.0 + np.exp(-(snr - 5.5)))
        return Table({"SNR": snr, "IS_TRUE": rng.random(n) < rate}), rate
    prob = rng.uniform(0.0, 1.0, n)
    rate = prob**3
    return Table({"PEAK_PROB": prob, "IS_TRUE": rng.random(n) < rate}), rate


def synthetic_combined(n, seed=0):
    """Combined candidates: found by both detectors they are mostly real, by one alone
    rarely; within each group the truth rate rises with the scores."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(["unet", "mmf", "both"], n, p=[0.4, 0.3, 0.3])
    prob = np.where(kind != "mmf", rng.uniform(0, 1, n), np.nan)
    snr = np.where(kind != "unet", rng.uniform(4, 8, n), np.nan)
    base = np.select([kind == "both", kind == "mmf"], [1.0, -3.0], -3.5)
    z = base + 2.0 * np.nan_to_num(prob) + 0.5 * (np.nan_to_num(snr, nan=4.0) - 4.0)
    rate = 1.0 / (1.0 + np.exp(-z))
    detectors = np.select([kind == "both", kind == "mmf"], ["unet_hfi+mmf", "mmf"], "unet_hfi")
    t = Table({"PEAK_PROB": prob, "SNR": snr, "DETECTORS": detectors,
               "IS_TRUE": rng.random(n) < rate})  # fmt: skip
    return t, rate


@pytest.mark.parametrize("detector", ["unet_hfi", "mmf"])
def test_calibrated_probability_is_monotone_and_in_range(detector):
    train, _ = synthetic(3000, seed=1, detector=detector)
    model = cal.fit_calibration(detector, train)
    col = "SNR" if detector == "mmf" else "PEAK_PROB"
    grid = np.linspace(-5.0, 20.0, 2001) if detector == "mmf" else np.linspace(-0.5, 1.5, 2001)
    p = cal.apply_calibration(model, {col: grid})
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p) >= 0)
    assert p[-1] - p[0] > 0.5  # not a constant


@pytest.mark.parametrize("detector", ["unet_hfi", "mmf"])
def test_calibrated_ece_small_where_the_raw_score_is_not(detector):
    train, _ = synthetic(20000, seed=2, detector=detector)
    test, rate = synthetic(20000, seed=3, detector=detector)
    model = cal.fit_calibration(detector, train)
    p = cal.apply_calibration(model, test)
    ece = cal.expected_calibration_error(p, test["IS_TRUE"], n_bins=10)
    assert ece < 0.05
    if detector != "mmf":  # PEAK_PROB read as a probability: far off
        raw = cal.expected_calibration_error(test["PEAK_PROB"], test["IS_TRUE"], n_bins=10)
        assert raw > 0.15
    assert np.mean(np.abs(p - rate)) < 0.05  # close to the known truth rate


def test_ece_of_known_cases():
    truth = np.array([True, False] * 50)
    assert cal.expected_calibration_error(np.full(100, 0.5), truth) == pytest.approx(0.0)
    assert cal.expected_calibration_error(np.full(100, 0.9), truth) == pytest.approx(0.4)
    assert np.isnan(cal.expected_calibration_error([], []))
    curve = cal.reliability_curve(np.linspace(0, 1, 95), np.zeros(95, bool), n_bins=10)
    assert len(curve) == 10 and curve["N"].sum() == 95
    assert curve["N"].max() - curve["N"].min() <= 1  # equal-count bins


@pytest.mark.parametrize("detector", ["unet_hfi", "mmf", "combined"])
def test_json_round_trip_gives_identical_predictions(tmp_path, detector):
    if detector == "combined":
        train, _ = synthetic_combined(3000, seed=4)
        test, _ = synthetic_combined(500, seed=5)
    else:
        train, _ = synthetic(3000, seed=4, detector=detector)
        test, _ = synthetic(500, seed=5, detector=detector)
    model = cal.fit_calibration(detector, train)
    path = tmp_path / f"{detector}.json"
    cal.write_calibration(path, model)
    back = cal.read_calibration(path)
    assert back == json.loads(json.dumps(model))
    np.testing.assert_array_equal(cal.apply_calibration(model, test),
                                  cal.apply_calibration(back, test))  # fmt: skip


def test_combined_model_uses_detector_membership():
    train, _ = synthetic_combined(20000, seed=6)
    model = cal.fit_calibration("combined", train)
    assert model["method"] == "logistic"
    coef = dict(zip(model["features"], model["coef"], strict=True))
    assert coef["BOTH"] > coef["MMF_ONLY"] + 2 and coef["BOTH"] > coef["UNET_ONLY"] + 2
    # the same scores, found by both detectors or by one: a different P(real)
    same = Table({"PEAK_PROB": [0.5, 0.5], "SNR": [5.0, np.nan],
                  "DETECTORS": ["unet_hfi+mmf", "unet_hfi"]})  # fmt: skip
    p = cal.apply_calibration(model, same)
    assert p[0] > p[1] + 0.3
    # rule combine_candidates' spelling (both / unet / mmf) means the same
    alt = Table({"PEAK_PROB": [0.5, 0.5], "SNR": [5.0, np.nan], "DETECTORS": ["both", "unet"]})
    np.testing.assert_allclose(cal.apply_calibration(model, alt), p)
    test, rate = synthetic_combined(20000, seed=7)
    q = cal.apply_calibration(model, test)
    assert cal.expected_calibration_error(q, test["IS_TRUE"]) < 0.05
    # monotone in each score
    grid = np.linspace(0, 1, 50)
    g = Table({"PEAK_PROB": grid, "SNR": np.full(50, 5.0), "DETECTORS": ["both"] * 50})
    assert np.all(np.diff(cal.apply_calibration(model, g)) >= 0)


def test_combined_drops_a_negative_score_weight():
    rng = np.random.default_rng(8)
    n = 4000
    prob = rng.uniform(0, 1, n)
    truth = rng.random(n) < 1.0 / (1.0 + np.exp(-(1.0 - 3.0 * prob)))  # falls with PEAK_PROB
    t = Table({"PEAK_PROB": prob, "SNR": np.full(n, np.nan), "DETECTORS": ["unet"] * n,
               "IS_TRUE": truth})  # fmt: skip
    model = cal.fit_calibration("combined", t)
    assert model["coef"][3] == 0.0
    p = cal.apply_calibration(model, t)
    assert np.ptp(p) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("truth", "reason", "rate"),
    [([], "no candidates", 0.5), ([True] * 9, "all candidates true", 0.95),
     ([False] * 9, "all candidates false", 0.05)],
)  # fmt: skip
@pytest.mark.parametrize("detector", ["unet_hfi", "combined"])
def test_degenerate_input_falls_back_to_a_constant(truth, reason, rate, detector):
    n = len(truth)
    t = Table({"PEAK_PROB": np.linspace(0.1, 0.9, n), "SNR": np.full(n, np.nan),
               "DETECTORS": np.array(["unet"] * n, dtype="U8"),
               "IS_TRUE": np.array(truth, dtype=bool)})  # fmt: skip
    model = cal.fit_calibration(detector, t)
    assert model["fallback"] == reason
    q = Table({"PEAK_PROB": [0.0, 0.5, 1.0], "SNR": [np.nan] * 3, "DETECTORS": ["unet"] * 3})
    np.testing.assert_allclose(cal.apply_calibration(model, q), rate)


def test_bad_input_named():
    with pytest.raises(cal.CalibrationError, match="'IS_TRUE' missing"):
        cal.fit_calibration("mmf", Table({"SNR": [5.0]}), "x.ecsv")
    with pytest.raises(cal.CalibrationError, match="'SNR' missing"):
        cal.fit_calibration("mmf", Table({"PEAK_PROB": [0.5], "IS_TRUE": [True]}))
    with pytest.raises(cal.CalibrationError, match="must be boolean"):
        cal.fit_calibration("mmf", Table({"SNR": [5.0], "IS_TRUE": [1]}))
    with pytest.raises(cal.CalibrationError, match="non-finite"):
        cal.fit_calibration("mmf", Table({"SNR": [5.0, np.nan], "IS_TRUE": [True, False]}))
    bad = Table({"PEAK_PROB": [np.nan], "SNR": [5.0], "DETECTORS": ["both"], "IS_TRUE": [True]})
    with pytest.raises(cal.CalibrationError, match="no PEAK_PROB although DETECTORS"):
        cal.fit_calibration("combined", bad)
    with pytest.raises(cal.CalibrationError, match="unknown method"):
        cal.apply_calibration({"method": "magic"}, {"SNR": [1.0]})


def test_read_calibration_refuses_other_versions(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"version": 99, "method": "isotonic"}))
    with pytest.raises(cal.CalibrationError, match="c.json: calibration format version 99"):
        cal.read_calibration(path)
    path.write_text("{not json")
    with pytest.raises(cal.CalibrationError, match="cannot read"):
        cal.read_calibration(path)


def test_evaluate_table_and_reliability_plot(tmp_path):
    from skydetect.plots.calibration import plot_reliability

    tables, models = {}, {}
    for i, det in enumerate(["unet_hfi", "mmf"]):
        train, _ = synthetic(2000, seed=10 + i, detector=det)
        tables[det], _ = synthetic(1000, seed=20 + i, detector=det)
        models[det] = cal.fit_calibration(det, train)
    table, curves = cal.evaluate(models, tables, n_bins=10)
    assert table.colnames[:3] == ["DETECTOR", "ECE", "N"]
    # the same truth rate on fit and test: true fractions and mean P(real) agree
    for r in table:
        assert abs(r["TRUE_FRACTION"] - r["TRUE_FRACTION_FIT"]) < 0.05
        assert abs(r["MEAN_P_REAL"] - r["TRUE_FRACTION"]) < 0.05
    assert list(table["DETECTOR"]) == ["unet_hfi", "mmf"] and list(table["N"]) == [1000, 1000]
    assert np.all(table["ECE"] < 0.08)
    plot_reliability(curves, table, tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 1000


def test_a_base_rate_shift_between_fit_and_test_is_reported():
    """Test candidates true more often than those fitted on (the same score, truth rate
    doubled): the table shows it, the mean P(real) stays at the fitted rate, and the ECE is
    about the shift of the true fraction."""
    train, _ = synthetic(4000, seed=3)
    rng = np.random.default_rng(4)
    prob = rng.uniform(0.0, 1.0, 4000)
    test = Table({"PEAK_PROB": prob, "IS_TRUE": rng.random(4000) < np.minimum(2 * prob**3, 1)})
    model = cal.fit_calibration("unet_hfi", train)
    table, _ = cal.evaluate({"unet_hfi": model}, {"unet_hfi": test})
    r = table[0]
    assert r["TRUE_FRACTION_FIT"] == pytest.approx(0.25, abs=0.02)  # mean of s**3
    assert r["TRUE_FRACTION"] == pytest.approx(0.40, abs=0.03)  # mean of min(2 s**3, 1)
    assert r["MEAN_P_REAL"] == pytest.approx(r["TRUE_FRACTION_FIT"], abs=0.02)
    assert r["ECE"] == pytest.approx(r["TRUE_FRACTION"] - r["MEAN_P_REAL"], abs=0.03)


def test_masked_scores_read_as_missing_and_empty_test_sets():
    from astropy.table import MaskedColumn

    train, _ = synthetic_combined(2000, seed=9)
    model = cal.fit_calibration("combined", train)
    snr = MaskedColumn([5.0, 0.0], mask=[False, True])
    t = Table({"PEAK_PROB": [0.5, 0.5], "SNR": snr, "DETECTORS": ["both", "unet"]})
    plain = Table({"PEAK_PROB": [0.5, 0.5], "SNR": [5.0, np.nan], "DETECTORS": ["both", "unet"]})
    np.testing.assert_array_equal(cal.apply_calibration(model, t),
                                  cal.apply_calibration(model, plain))  # fmt: skip
    empty = Table({"PEAK_PROB": np.zeros(0), "SNR": np.zeros(0),
                   "DETECTORS": np.zeros(0, "U4"), "IS_TRUE": np.zeros(0, bool)})  # fmt: skip
    table, curves = cal.evaluate({"combined": model}, {"combined": empty})
    assert table["N"][0] == 0 and np.isnan(table["ECE"][0]) and len(curves["combined"]) == 0


def test_ece_of_a_perfectly_calibrated_probability_is_its_binomial_floor():
    """Labels drawn from P(real) = 0.5 in 10 bins of 50: each bin's fraction true scatters by
    sqrt(0.25 / 50), so the ECE is E|N(0, 0.0707)| = 0.0707 * sqrt(2 / pi) = 0.056; four times
    the candidates halve it."""
    rng = np.random.default_rng(5)
    floor = cal.ece_if_calibrated(np.full(500, 0.5), rng, n_bins=10, n_draws=400)
    assert np.median(floor) == pytest.approx(0.0707 * np.sqrt(2 / np.pi), rel=0.12)
    quad = cal.ece_if_calibrated(np.full(2000, 0.5), rng, n_bins=10, n_draws=400)
    assert np.median(quad) == pytest.approx(np.median(floor) / 2, rel=0.15)


def test_ece_interval_resamples_blocks_of_sky_not_candidates():
    """Candidates all inside one nside-8 block: every block resample repeats the same
    candidates, so the ECE's interval has zero width; spread over many blocks it does not.
    A miscalibrated P(real) (true twice as often as it says) sits above the floor."""
    rng = np.random.default_rng(6)
    prob = rng.uniform(0.05, 0.45, 500)
    is_true = rng.random(500) < 2 * prob
    one_block = Table({"PEAK_PROB": prob, "IS_TRUE": is_true,
                       "GLON": 30.0 + rng.uniform(0, 0.5, 500),
                       "GLAT": 40.0 + rng.uniform(0, 0.5, 500)})  # fmt: skip
    model = {"version": cal.FORMAT_VERSION, "detector": "unet_hfi", "n_fit": 10, "n_true": 3,
             "method": "isotonic", "score": "PEAK_PROB", "x": [0.0, 1.0], "y": [0.0, 1.0]}  # fmt: skip
    table, _ = cal.evaluate({"unet_hfi": model}, {"unet_hfi": one_block}, n_bootstrap=50)
    r = table[0]
    assert r["ECE_LO95"] == pytest.approx(r["ECE"]) and r["ECE_HI95"] == pytest.approx(r["ECE"])
    spread = Table(one_block)
    spread["GLON"] = rng.uniform(0, 360, 500)
    spread["GLAT"] = np.degrees(np.arcsin(rng.uniform(-1, 1, 500)))
    table, _ = cal.evaluate({"unet_hfi": model}, {"unet_hfi": spread}, n_bootstrap=50)
    r = table[0]
    assert r["ECE_LO95"] < r["ECE"] < r["ECE_HI95"]
    assert r["ECE"] == pytest.approx(np.mean(prob), abs=0.04)  # true 2p against p
    assert r["ECE_LO95"] > r["ECE_CALIBRATED_HI95"]
