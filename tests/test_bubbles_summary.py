"""skydetect.bubbles.summary: Clopper-Pearson intervals, the evaluation summary."""

import json

import numpy as np
import pytest

from skydetect.bubbles import summary as BS


def test_clopper_pearson_matches_binomtest():
    from scipy.stats import binomtest

    for k, n in [(0, 12), (10, 12), (12, 12), (40, 45), (1, 9)]:
        ci = binomtest(k, n).proportion_ci(0.95, method="exact")
        lo, hi = BS.clopper_pearson(k, n)
        assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)
    # the issue's 10 of 12: 0.52-0.98
    lo, hi = BS.clopper_pearson(10, 12)
    assert round(lo, 2) == 0.52 and round(hi, 2) == 0.98
    assert np.isnan(BS.clopper_pearson(0, 0)[0])


def test_evaluation_summary_bins_and_unclear():
    maj = np.array([0.3, 0.45, 0.7, 1.5, 3.0, 0.6])  # arcmin; the last one unclear
    clear = np.array([True, True, True, True, True, False])
    boxes = np.array([[i * 100, 0, i * 100 + 10 * m, 10 * m] for i, m in enumerate(maj)], float)
    truth = {"f": {"boxes": boxes, "clear": clear, "maj_arcmin": maj}}
    # found: bubbles 1, 2, 4 and the unclear one; one box on empty sky
    pred = np.r_[boxes[[1, 2, 4, 5]], [[5000, 0, 5010, 10]]]
    s = BS.evaluation_summary({"f": (pred, np.full(5, 0.9))}, truth)
    assert {k: s["recall_clear"][k] for k in ("k", "n")} == {"k": 3, "n": 5}
    lo, hi = BS.clopper_pearson(3, 5)
    assert (s["recall_clear"]["lo"], s["recall_clear"]["hi"]) == (lo, hi)
    got = {b: (p["k"], p["n"]) for b, p in s["recall_by_size"].items()}
    assert got == {"<0.5": (1, 2), "0.5-1": (1, 1), "1-2": (0, 1), ">2": (1, 1)}
    assert (s["precision"]["k"], s["precision"]["n"]) == (3, 4)  # the unclear box excluded
    assert s["unclear"] == {"n": 1, "found": 1, "detections": 1}
    assert "0.5-1" in BS.format_summary(s)
    json.dumps(s, allow_nan=False)  # strict JSON
    empty = BS.evaluation_summary(
        {"f": (pred, np.full(5, 0.9))}, {"f": {**truth["f"], "maj_arcmin": maj + 5}}
    )
    assert empty["recall_by_size"]["<0.5"] == {
        "k": 0,
        "n": 0,
        "value": None,
        "lo": None,
        "hi": None,
    }
    assert "MajAxis <0.5'" in BS.format_summary(empty)
    with pytest.raises(ValueError, match="field"):
        BS.evaluation_summary({"g": (pred, np.ones(5))}, truth)
