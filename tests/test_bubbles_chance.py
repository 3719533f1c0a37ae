"""Bubble scoring: the IoU rule as the headline and the chance rate of random boxes."""

import json
import math

import numpy as np
import pytest

from skydetect.bubbles import summary as S
from skydetect.bubbles.chance import chance_rates, random_boxes


def _one_bubble_fields(n_fields, side, a):
    """``n_fields`` fully covered side x side fields, each with one clear a x a bubble in the
    middle and one a x a detection 6 px off in x and y (IoU 0.32, covering 0.49 of it)."""
    c = (side - a) / 2
    box = np.array([[c, c, c + a, c + a]], float)
    det = {f"f{i}": (box + 6.0, np.array([0.9])) for i in range(n_fields)}
    truth = {f"f{i}": {"boxes": box, "clear": np.array([True])} for i in range(n_fields)}
    cov = {f"f{i}": np.ones((side, side), bool) for i in range(n_fields)}
    return det, truth, cov


def _square_offset_area(min_overlap):
    """Area (in units of a^2) of the offsets (dx, dy) of two equal a x a squares whose overlap
    is >= min_overlap * a^2: 4 * int_m^1 (1 - m / s) ds = 4 (1 - m + m ln m)."""
    m = min_overlap
    return 4 * (1 - m + m * math.log(m))


def test_chance_recall_equals_expectation_on_a_hand_built_field():
    # one a x a bubble, one a x a box placed uniformly with its start in [0, side - a]^2:
    # IoU >= 0.5 <=> overlap >= 2/3 a^2; the reference rule <=> overlap >= 1/3 a^2
    side, a, n_fields, draws = 60, 20, 200, 40
    det, truth, cov = _one_bubble_fields(n_fields, side, a)
    rates = chance_rates(det, truth, cov, draws=draws, seed=3)
    frame = ((side - a) / a) ** 2
    n = n_fields * draws
    for rule, m in (("iou", 2 / 3), ("reference", 1 / 3)):
        p = _square_offset_area(m) / frame
        got = rates[f"chance_recall_{rule}"]
        assert got["draws"] == draws
        assert got["value"] == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n))
        assert got["lo"] <= got["value"] <= got["hi"]
        # one detection per field: precision and recall are the same counts
        assert rates[f"chance_precision_{rule}"]["value"] == pytest.approx(got["value"])
    assert rates["chance_recall_iou"]["value"] < rates["chance_recall_reference"]["value"]


def test_chance_recall_limits_and_coverage():
    # the bubble fills the whole field: any same-size box is it
    box = np.array([[0, 0, 20, 20]], float)
    det = {"f": (box, np.array([0.5]))}
    truth = {"f": {"boxes": box, "clear": np.array([True])}}
    rates = chance_rates(det, truth, {"f": np.ones((20, 20), bool)}, draws=20)
    assert rates["chance_recall_iou"] == {"value": 1.0, "lo": 1.0, "hi": 1.0, "draws": 20}
    assert rates["chance_recall_reference"]["value"] == 1.0
    # a tiny box in a field whose bubble lies in the uncovered half: never found
    far = np.array([[150, 40, 190, 80]], float)
    cov = np.zeros((100, 200), bool)
    cov[:, :100] = True
    tiny = {"f": (np.array([[0, 0, 4, 4]] * 5, float), np.full(5, 0.5))}
    rates = chance_rates(tiny, {"f": {"boxes": far, "clear": np.array([True])}}, {"f": cov})
    assert rates["chance_recall_iou"]["value"] == rates["chance_recall_reference"]["value"] == 0
    assert rates["chance_precision_reference"]["value"] == 0
    # random boxes keep their sizes, stay in the frame and centre on covered pixels
    rng = np.random.default_rng(0)
    sizes = np.array([[0, 0, 4, 4], [10, 10, 40, 30], [0, 0, 300, 50]], float)
    for _ in range(50):
        b = random_boxes(sizes, cov, rng)
        np.testing.assert_allclose(b[:, 2:] - b[:, :2], sizes[:, 2:] - sizes[:, :2])
        assert np.all(b[:2, :2] >= 0) and np.all(b[:2, 2] <= 200) and np.all(b[:2, 3] <= 100)
        assert np.all((b[:, 0] + b[:, 2]) / 2 < 100)
        assert -100 <= b[2, 0] <= 0  # wider than the field: the field's width inside it


def test_chance_rates_reject_bad_input():
    box = np.array([[0, 0, 5, 5]], float)
    det = {"f": (box, np.array([0.5]))}
    truth = {"f": {"boxes": box, "clear": np.array([True])}}
    with pytest.raises(ValueError, match="coverage map for field"):
        chance_rates(det, truth, {"g": np.ones((10, 10), bool)})
    with pytest.raises(ValueError, match="truth/catalogue boxes for field"):
        chance_rates(det, {}, {"f": np.ones((10, 10), bool)})
    with pytest.raises(ValueError, match="no covered pixel"):
        chance_rates(det, truth, {"f": np.zeros((10, 10), bool)})


def test_one_big_box_finds_at_most_one_bubble_under_the_iou_rule():
    # four 10 x 10 bubbles shifted by 2 px, one 12 x 12 box with IoU 0.69 to each of them;
    # and ten small bubbles under one large box
    near = np.array([[x, y, x + 10, y + 10] for x in (0, 2) for y in (0, 2)], float)
    small = np.array([[200 + 40 * i, 20, 210 + 40 * i, 30] for i in range(10)], float)
    truth = {
        "near": {"boxes": near, "clear": np.ones(4, bool), "maj_arcmin": np.full(4, 0.6)},
        "small": {"boxes": small, "clear": np.ones(10, bool), "maj_arcmin": np.full(10, 0.6)},
    }
    for field, big, n_ref in (("near", [0, 0, 12, 12], 4), ("small", [190, 0, 620, 60], 10)):
        det = {field: (np.array([big], float), np.array([0.9]))}
        s = S.evaluation_summary(det, {field: truth[field]})
        assert s["recall_clear_iou"]["k"] <= 1 < s["recall_clear"]["k"] == n_ref
    det = {"near": (np.array([[0, 0, 12, 12]], float), np.array([0.9]))}
    assert S.evaluation_summary(det, {"near": truth["near"]})["recall_clear_iou"]["k"] == 1


def test_summary_has_the_headline_and_chance_keys():
    det, truth, cov = _one_bubble_fields(3, 60, 20)
    for t in truth.values():
        t["maj_arcmin"] = np.array([0.7])
    summary = S.evaluation_summary(det, truth, iou_threshold=0.5)
    summary.update(chance_rates(det, truth, cov, draws=20))
    for key in ("recall_clear_iou", "precision_iou", "recall_clear", "precision"):
        assert set(summary[key]) == {"k", "n", "value", "lo", "hi"}
        lo, hi = S.clopper_pearson(summary[key]["k"], summary[key]["n"])
        assert (summary[key]["lo"], summary[key]["hi"]) == (lo, hi)
    assert (summary["recall_clear_iou"]["k"], summary["recall_clear"]["k"]) == (0, 3)
    for key in ("chance_recall_iou", "chance_recall_reference", "chance_precision_iou"):
        assert set(summary[key]) == {"value", "lo", "hi", "draws"}
    assert summary["headline_rule"] == "iou"
    json.dumps(summary, allow_nan=False)  # strict JSON
    lines = S.format_summary(summary).splitlines()
    print("\n".join(lines))
    assert lines[0].startswith("IoU rule (headline") and "recall (clear)" in lines[1]
    ref = next(i for i, line in enumerate(lines) if line.startswith("reference rule (the paper"))
    assert ref > lines.index(next(x for x in lines if "chance recall" in x))
    assert sum("chance recall" in line for line in lines) == 2
