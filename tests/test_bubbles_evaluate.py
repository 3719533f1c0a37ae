"""skydetect.bubbles.evaluate: the reference and IoU matching rules, F2, the threshold choice."""

import numpy as np
import pytest

from skydetect.bubbles import evaluate as E


def test_reference_rule_hand_case():
    truth = np.array([[0, 0, 30, 30], [100, 100, 130, 130], [200, 200, 230, 230]], float)
    clear = np.array([True, True, False])
    pred = np.array(
        [
            [0, 0, 30, 10.5],  # covers 10.5/30 = 0.35 of bubble 0 -> match
            [100, 100, 130, 109.5],  # covers 0.317 of bubble 1 -> no match
            [-100, -100, 400, 400],  # covers all three entirely (the rule ignores box size)
            [200, 200, 230, 230],  # the unclear bubble: don't care (neither hit nor false)
            [500, 500, 520, 520],  # nothing
        ]
    )
    scores = np.linspace(0.9, 0.5, 5)
    c = E.count(pred, scores, truth, clear)
    assert (c.n_truth, c.n_found, c.n_pred, c.n_pred_matched) == (2, 2, 5, 2)
    assert (c.n_unclear, c.n_unclear_found, c.n_pred_unclear) == (1, 1, 1)
    assert c.n_not_in_catalogue == 2  # box 1 (too little) and box 4
    assert c.precision_catalogue == pytest.approx(3 / 5)
    # precision over the 4 boxes that are not on unclear bubbles only
    assert c.recall == 1.0 and c.precision == pytest.approx(2 / 4)
    assert c.f2 == pytest.approx(5 * 0.5 * 1.0 / (4 * 0.5 + 1.0))
    # without the huge box, bubble 1 is missed
    c = E.count(pred[[0, 1, 3, 4]], scores[[0, 1, 3, 4]], truth, clear)
    assert (c.n_found, c.n_pred_matched, c.n_pred_unclear) == (1, 1, 1)
    assert c.recall == 0.5 and c.precision == pytest.approx(1 / 3)
    assert E.f_beta(0.25, 0.5) == pytest.approx(5 * 0.125 / (1.0 + 0.5))
    assert E.f_beta(0.0, 0.0) == 0.0
    assert E.count(np.zeros((0, 4)), [], truth, clear).f2 == 0.0


def test_unclear_boxes_count_neither_way():
    """A box on an unclear bubble changes neither recall nor precision nor the chosen
    threshold; the same box on empty sky is a false positive."""
    truth = np.array([[0, 0, 20, 20], [100, 100, 120, 120]], float)
    clear = np.array([True, False])
    hit = np.array([[0, 0, 20, 20]], float)
    on_unclear = np.array([[101, 101, 121, 121]], float)
    empty = np.array([[300, 300, 320, 320]], float)
    base = E.count(hit, [0.9], truth, clear)
    with_unclear = E.count(np.r_[hit, on_unclear], [0.9, 0.8], truth, clear)
    with_false = E.count(np.r_[hit, empty], [0.9, 0.8], truth, clear)
    assert base.precision == with_unclear.precision == 1.0
    assert base.recall == with_unclear.recall == 1.0 and with_unclear.f2 == base.f2
    assert with_unclear.n_pred_unclear == 1 and with_unclear.n_unclear_found == 1
    assert with_false.precision == 0.5 and with_false.n_pred_unclear == 0
    assert with_unclear.n_truth == 1  # the unclear bubble is not in the recall set
    for rule in ("reference", "iou"):  # the same under both rules
        c = E.count(np.r_[hit, on_unclear], [0.9, 0.8], truth, clear, rule=rule)
        assert (c.n_pred_matched, c.n_pred_unclear, c.precision) == (1, 1, 1.0)
    # the threshold choice: a second clear bubble found at score 0.55 only; ten boxes at 0.6
    # on the unclear bubble keep the low threshold, ten on empty sky push it up
    truth2 = np.r_[truth, [[200, 0, 220, 20]]]
    clear2 = np.r_[clear, True]
    found = np.array([[0, 0, 20, 20], [200, 0, 220, 20]], float)
    jitter = np.arange(10)[:, None] * [0.5, 0, 0.5, 0]
    for extra, want in ((on_unclear + jitter, 0.5), (empty + jitter * 10, 0.7)):
        fields = [(np.r_[found, extra], np.r_[0.9, 0.55, np.full(10, 0.6)], truth2, clear2)]
        assert E.best_threshold(fields, [0.5, 0.7])[0] == want


def test_iou_rule_one_to_one():
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    pred = np.array([[0, 0, 10, 10], [0.5, 0, 10.5, 10], [20, 0, 30, 12], [40, 0, 50, 10]], float)
    scores = np.array([0.6, 0.9, 0.8, 0.7])
    m = E.iou_matches(pred, scores, truth, 0.5)
    # the higher-scored duplicate takes bubble 0; the other becomes a false positive
    np.testing.assert_array_equal(m, [[False, True, False, False], [False, False, True, False]])
    c = E.count(pred, scores, truth, rule="iou", iou_threshold=0.5)
    assert (c.n_found, c.n_pred_matched, c.n_not_in_catalogue) == (2, 2, 1)
    c = E.count(pred, scores, truth, rule="iou", iou_threshold=0.9)
    assert c.n_found == 1  # [20, 0, 30, 12] has IoU 10/12 < 0.9
    with pytest.raises(ValueError, match="rule"):
        E.count(pred, scores, truth, rule="f1")


def test_best_threshold_prefers_clean_cut():
    truth = np.array([[0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [70, 70, 80, 80]], float)
    scores = np.array([0.9, 0.6, 0.72])
    thr, f2, table = E.best_threshold([(pred, scores, truth, None)], [0.5, 0.7, 0.8, 0.95])
    assert thr == 0.8 and f2 == 1.0  # 0.8 keeps only the true box; 0.95 keeps nothing
    assert dict(table)[0.95].f2 == 0.0
