"""Bubble model side: F2 matching rule, window merging, training with kill-and-resume."""

import json

import numpy as np
import pytest

import skydetect  # noqa: F401  (before TensorFlow)
from skydetect.bubbles import evaluate as E
from skydetect.bubbles import summary as BS
from skydetect.bubbles.detect import DetectSettings, merge_detections, window_to_field
from skydetect.bubbles.train import (
    TrainSettings,
    ValidationField,
    epoch_batches,
    make_targets,
    train_ssd,
)

tf = pytest.importorskip("tensorflow")


# ------------------------------------------------------------------ matching rules
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
        tiles = [(np.r_[found, extra], np.r_[0.9, 0.55, np.full(10, 0.6)], truth2, clear2)]
        assert E.best_threshold(tiles, [0.5, 0.7])[0] == want


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
    empty = BS.evaluation_summary({"f": (pred, np.full(5, 0.9))}, {"f": {**truth["f"], "maj_arcmin": maj + 5}})
    assert empty["recall_by_size"]["<0.5"] == {"k": 0, "n": 0, "value": None, "lo": None, "hi": None}
    assert "MajAxis <0.5'" in BS.format_summary(empty)
    with pytest.raises(ValueError, match="field"):
        BS.evaluation_summary({"g": (pred, np.ones(5))}, truth)


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


# ------------------------------------------------------------------ merging
def test_merge_across_overlapping_windows_one_box_per_object():
    objects = np.array([[120, 40, 160, 80], [300, 200, 360, 260]], float)  # tile pixels
    windows = [
        (x0, y0, s)
        for s in (96, 192)
        for x0 in range(0, 400, s // 3)
        for y0 in range(0, 300, s // 3)
    ]
    boxes, scores = [], []
    rng = np.random.default_rng(3)
    for x0, y0, s in windows:
        for obj in objects:
            if obj[0] >= x0 and obj[1] >= y0 and obj[2] <= x0 + s and obj[3] <= y0 + s:
                unit = (obj - [x0, y0, x0, y0]) / s + rng.normal(0, 0.01, 4)  # jittered box
                boxes.append(window_to_field(unit[None], x0, y0, s))
                scores.append(rng.uniform(0.6, 0.99))
    boxes = np.concatenate(boxes)
    assert len(boxes) > 10  # each object seen in many windows and both scales
    merged, s = merge_detections(boxes, scores, 0.3)
    assert len(merged) == 2
    assert E.count(merged, s, objects, rule="iou", iou_threshold=0.7).n_found == 2


def test_window_to_tile_exact_inverse():
    b = window_to_field(np.array([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]]), 10, 20, 200)
    np.testing.assert_allclose(b, [[10, 20, 210, 220], [60, 120, 160, 220]])


# ------------------------------------------------------------------ training
S = 32


def _ring(rng, n):
    """Images with a bright disc (24 µm) inside a ring (8 µm); boxes in input pixels."""
    yy, xx = np.mgrid[:S, :S] + 0.5
    xs, bs = [], []
    for _ in range(n):
        r = rng.uniform(5, 9)
        cx, cy = rng.uniform(r + 2, S - r - 2, 2)
        d = np.hypot(xx - cx, yy - cy)
        img = np.stack([np.exp(-((d / (0.5 * r)) ** 2)), np.exp(-(((d - r) / 1.5) ** 2))], -1)
        xs.append((img + rng.normal(0, 0.05, img.shape)).astype(np.float32))
        bs.append(np.array([[cx - 1.3 * r, cy - 1.3 * r, cx + 1.3 * r, cy + 1.3 * r]]))
    return xs, bs


class _Crops:
    def __init__(self, seed):
        self.seed = seed

    def epoch(self, e):
        xs, bs = _ring(np.random.default_rng([self.seed, e]), 12)
        yield from zip(xs, bs, strict=True)


def _setup(tmp_path, name):
    from skydetect.bubbles.ssd.model import build_ssd

    tf.keras.utils.set_random_seed(5)
    model, priors = build_ssd(
        {
            "backbone": "light",
            "input_size": S,
            "aspect_ratios": [[2], [2]],
            "scales": [0.4, 0.7, 0.95],
        }
    )
    rng = np.random.default_rng(9)
    neg = {
        "inputs": rng.normal(0.2, 0.05, (10, S, S, 2)).astype(np.float32),
        "weight": np.r_[np.ones(5), np.zeros(5)],
    }
    vx, vb = _ring(rng, 3)
    val = [
        ValidationField(
            "v",
            np.stack(vx),
            np.array([0, 100, 200]),
            np.zeros(3, int),
            np.full(3, S),
            np.concatenate(vb) + [[0, 0, 0, 0], [100, 0, 100, 0], [200, 0, 200, 0]],
            np.ones(3, bool),
        )
    ]
    settings = TrainSettings(
        epochs=2,
        patience=5,
        batch_bubbles=4,
        batch_negatives=2,
        learning_rate=3e-3,
        thresholds=[0.5, 0.7, 0.9],
    )
    return model, priors, neg, val, settings, tmp_path / name


def test_targets_and_batches():
    from skydetect.bubbles.ssd.priors import default_boxes

    priors = default_boxes([4, 2], [0.4, 0.7, 0.95], [[2], [2]])
    y = make_targets([np.array([[4.0, 4.0, 24.0, 24.0]]), np.zeros((0, 4))], S, priors)
    assert y.shape == (2, len(priors), 5)
    assert y[0, :, 4].sum() >= 1 and y[1, :, 4].sum() == 0
    xs, bs = _ring(np.random.default_rng(0), 5)
    s = TrainSettings(batch_bubbles=2, batch_negatives=3)
    batches = list(epoch_batches(xs, bs, np.zeros((6, S, S, 2)), np.ones(6), s, _rng()))
    assert [len(x) for x, _, _ in batches] == [5, 5, 4]  # 2+3, 2+3, 1+3
    assert sum(len(b) for _, bx, _ in batches for b in bx) == 5  # every bubble box once
    with pytest.raises(ValueError, match="weights"):
        list(epoch_batches(xs, bs, np.zeros((6, S, S, 2)), np.zeros(6), s, _rng()))


def _rng(seed=1):
    return np.random.default_rng(seed)


def test_negatives_drawn_with_their_class_weights():
    """Each negative carries its index as pixel value: the draws over many epochs follow the
    per-class weights (weight 0 never, weight 3 three times as often as weight 1)."""
    xs, bs = _ring(_rng(0), 4)
    neg = np.broadcast_to(np.arange(6.0)[:, None, None, None], (6, S, S, 2)).astype(np.float32)
    w = np.array([1, 1, 3, 3, 0, 0.0])
    s = TrainSettings(batch_bubbles=2, batch_negatives=4)
    seen = np.zeros(6)
    rng = _rng(7)
    for _ in range(300):
        for x, bx, _ in epoch_batches(xs, bs, neg, w, s, rng):
            ids = x[len(x) - s.batch_negatives :, 0, 0, 0].astype(int)
            np.add.at(seen, ids, 1)
            assert all(len(b) == 0 for b in bx[-s.batch_negatives :])  # negatives: no boxes
    assert seen[4] == seen[5] == 0
    frac = seen / seen.sum()
    np.testing.assert_allclose(frac[:4], [1 / 8, 1 / 8, 3 / 8, 3 / 8], atol=0.02)


def test_crops_give_unclear_bubbles_no_target(tmp_path):
    """An unclear bubble beside a clear one: the crop's don't-care box lands on it (after the
    augmentation too), and make_targets marks the priors over it -1, never 1 or 0."""
    from astropy.table import Table

    from skydetect.bubbles.catalog import bubble_boxes
    from skydetect.bubbles.crops import BubbleCrops
    from skydetect.bubbles.ssd import boxes as B_
    from skydetect.bubbles.ssd.boxes import IGNORE
    from skydetect.bubbles.ssd.priors import default_boxes
    from skydetect.io.spitzer import SpitzerField, field_wcs

    w, shape = field_wcs(30, 0, 0.5, 0.3, 12.0)
    t = Table()
    t["MWP"] = ["C", "U"]
    t["GLON"], t["GLAT"] = [30.0, 30.0 - 2.8 / 60], [0.0, 0.0]
    t["MajAxis"], t["MinAxis"], t["Reff"] = [1.0, 0.8], [1.0, 0.8], [1.0, 0.8]
    t["theta"], t["Ecc"] = [0.0, 0.0], [0.0, 0.0]
    t["CLEAR"] = [True, False]
    boxes = bubble_boxes(t, w, 12.0, 1.3)
    data = np.random.default_rng(0).normal(10, 1, (2, *shape)).astype(np.float32)
    for b in boxes:  # mark each bubble by a bright square in channel 0
        data[0, int(b[1]) : int(b[3]), int(b[0]) : int(b[2])] += 100 + 50 * (b is boxes[1])
    tile = SpitzerField(data, w, 12.0, "03000+0000")
    crops = BubbleCrops([tile], t, seed=3, k_range=(3.0, 3.5), input_size=48)
    assert len(crops) == 1  # only the clear bubble makes crops
    priors = default_boxes([6, 3], [0.2, 0.5, 0.9], [[2], [2]])
    n_ign = 0
    for e in range(8):
        for x, pos, ign in crops.targets(e):
            assert len(pos) == 1
            if not len(ign):
                continue
            n_ign += 1
            # the don't-care box is where the unclear bubble's pixels are in the augmented crop
            b = np.clip(np.rint(ign[0]).astype(int), 0, 48)
            inner = x[b[1] + 1 : b[3] - 1, b[0] + 1 : b[2] - 1, 0]
            assert inner.size and inner.mean() > 0.5
            assert B_.intersection(ign, pos).max() == 0  # beside the clear bubble, not on it
            y = make_targets([pos], 48, priors, 0.5, [ign])
            labels = y[0, :, 4]
            assert (labels == IGNORE).any() and (labels == 1).any()
            assert np.all(y[0, labels == IGNORE, :4] == 0)
    assert n_ign > 0


def test_validate_every_k_epochs_and_patience_in_epochs(tmp_path, monkeypatch):
    """validate_every 2: the F2 is computed after epochs 2 and 4 only, epochs 1 and 3 carry
    none; patience 2 (epochs) stops after one validation without a better F2; the best
    validated epoch's threshold is kept."""
    from types import SimpleNamespace

    import skydetect.bubbles.train as T

    model, priors, neg, val, settings, out = _setup(tmp_path, "k")
    settings.epochs, settings.patience, settings.validate_every = 6, 2, 2
    f2s = iter([(0.7, 0.5), (0.6, 0.4), (0.5, 0.9)])
    calls = []

    def fake_validate(*args, **kwargs):
        thr, f2 = next(f2s)
        calls.append(thr)
        return thr, SimpleNamespace(f2=f2, precision=f2, recall=f2)

    monkeypatch.setattr(T, "validate", fake_validate)
    res = train_ssd(model, priors, _Crops(1), neg, val, settings, out, seed=11)
    assert calls == [0.7, 0.6]  # epochs 2 and 4; stopped before a third validation
    hist = res["history"]
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4]
    assert np.isnan(hist[0]["val_f2"]) and np.isnan(hist[2]["val_f2"])
    assert [hist[1]["val_f2"], hist[3]["val_f2"]] == [0.5, 0.4]
    assert res["best_epoch"] == 2 and res["threshold"] == 0.7 and res["epochs_run"] == 4
    settings.epochs, settings.patience = 3, 10  # the last epoch is always validated
    settings.lr_schedule = "cosine"  # the optimiser takes each epoch's rate
    f2s = iter([(0.6, 0.3), (0.8, 0.6)])
    calls.clear()
    res = train_ssd(model, priors, _Crops(1), neg, val, settings, tmp_path / "k3", seed=11)
    assert calls == [0.6, 0.8] and res["best_epoch"] == 3 and res["threshold"] == 0.8
    lrs = [r["learning_rate"] for r in res["history"]]
    assert lrs == pytest.approx([3e-3, 3e-3 * 0.525, 3e-3 * 0.05])


def test_cosine_learning_rate_schedule():
    from skydetect.bubbles.train import epoch_learning_rate

    s = TrainSettings(epochs=11, learning_rate=1e-3, lr_schedule="cosine", lr_min_fraction=0.1)
    lrs = np.array([epoch_learning_rate(s, e) for e in range(11)])
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
    assert lrs[5] == pytest.approx(0.55e-3) and np.all(np.diff(lrs) < 0)
    s.lr_schedule = "constant"
    assert epoch_learning_rate(s, 7) == 1e-3
    s.lr_schedule = "step"
    with pytest.raises(ValueError, match="bubbles.train.lr_schedule"):
        epoch_learning_rate(s, 0)


@pytest.mark.slow
def test_train_kill_and_resume(tmp_path):
    model, priors, neg, val, settings, out_a = _setup(tmp_path, "a")
    res_a = train_ssd(model, priors, _Crops(1), neg, val, settings, out_a, seed=11)
    w_a = model.get_weights()
    assert [r["epoch"] for r in res_a["history"]] == [1, 2]
    assert res_a["history"][1]["loss"] < res_a["history"][0]["loss"]

    class Killed(RuntimeError):
        pass

    def kill(epoch, row):
        if epoch == 0:
            raise Killed

    model, priors, neg, val, settings, out_b = _setup(tmp_path, "b")
    with pytest.raises(Killed):
        train_ssd(model, priors, _Crops(1), neg, val, settings, out_b, seed=11, on_epoch_end=kill)
    assert not (out_b / "model.json").exists()
    state = json.loads((out_b / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1
    # a fresh process: new model object, same code; continues with epoch 2 only
    model, priors, neg, val, settings, _ = _setup(tmp_path, "b")
    seen = []
    res_b = train_ssd(
        model,
        priors,
        _Crops(1),
        neg,
        val,
        settings,
        out_b,
        seed=11,
        on_epoch_end=lambda e, r: seen.append(e),
    )
    assert seen == [1]
    assert [r["epoch"] for r in res_b["history"]] == [1, 2]
    for key in ("loss", "val_f2"):
        assert res_b["history"][1][key] == pytest.approx(res_a["history"][1][key], rel=1e-4)
    # same data, same optimiser state -> the same weights as the uninterrupted run
    for wa, wb in zip(w_a, model.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
    meta = json.loads((out_b / "model.json").read_text())
    assert 0.5 <= meta["threshold"] <= 0.9 and meta["ssd"]["input_size"] == S
    assert (out_b / "weights.h5").exists() and (out_b / "history.csv").exists()
    # other settings or data with an existing checkpoint: start over, never mix
    settings.epochs = 1
    seen.clear()
    train_ssd(
        model,
        priors,
        _Crops(1),
        neg,
        val,
        settings,
        out_b,
        seed=11,
        on_epoch_end=lambda e, r: seen.append(e),
        resume_key=["other data"],
    )
    assert seen == [0]


class _BigCrops:
    """Two ring images at the SSD300 input size."""

    def __init__(self, size):
        self.size = size

    def epoch(self, e):
        yy, xx = np.mgrid[: self.size, : self.size] + 0.5
        d = np.hypot(xx - 150, yy - 150)
        img = np.stack([np.exp(-((d / 30) ** 2)), np.exp(-(((d - 60) / 8) ** 2))], -1)
        box = np.array([[72.0, 72.0, 228.0, 228.0]])
        yield img.astype(np.float32), box
        yield img[::-1].astype(np.float32), box


def _big_validation(size):
    x = next(iter(_BigCrops(size).epoch(0)))[0][None]
    return [
        ValidationField(
            "v", x, np.zeros(1, int), np.zeros(1, int), np.full(1, size),
            np.array([[72.0, 72.0, 228.0, 228.0]]), np.ones(1, bool),
        )
    ]


def test_vgg16_ssd300_trains_one_step_on_cpu(tmp_path):
    """The reference's SSD300 (VGG16, 8732 boxes) trains end to end: one optimiser step with
    its loss changes the weights, validation and saving run (thin layers to stay quick)."""
    from skydetect.bubbles.train import build_and_train

    settings = TrainSettings(
        epochs=1, batch_bubbles=2, batch_negatives=1, learning_rate=1e-3,
        thresholds=[0.5], mixed_precision=False,
    )
    neg = {"inputs": np.full((2, 300, 300, 2), 0.2, np.float32), "weight": np.ones(2)}
    res = build_and_train(
        {"backbone": "vgg16", "width": 0.0625}, 300, settings, DetectSettings(min_score=0.3),
        _BigCrops(300), neg, _big_validation(300), tmp_path / "vgg", seed=2,
    )
    meta = json.loads((tmp_path / "vgg" / "model.json").read_text())
    assert meta["ssd"]["backbone"] == "vgg16" and meta["ssd"]["input_size"] == 300
    assert res["history"][0]["epoch"] == 1 and np.isfinite(res["history"][0]["loss"])
    assert res["history"][0]["loss"] > 0
    from skydetect.bubbles.ssd.model import build_ssd, load_model

    trained, priors, _ = load_model(tmp_path / "vgg")
    assert len(priors) == 8732
    tf.keras.utils.set_random_seed(int(np.random.SeedSequence([2, 8]).generate_state(1)[0]))
    fresh, _ = build_ssd({"backbone": "vgg16", "width": 0.0625})
    changed = [
        not np.allclose(a, b) for a, b in zip(fresh.get_weights(), trained.get_weights(), strict=True)
    ]
    assert sum(changed) > len(changed) // 2  # the step reached the backbone, not just the heads


def test_mixed_precision_training_path(tmp_path):
    """mixed_precision: float16 compute with loss scaling trains (here on the CPU) and saves
    float32 weights that rebuild in a float32 model."""
    from skydetect.bubbles.ssd.model import load_model
    from skydetect.bubbles.train import build_and_train, use_mixed_precision

    _, _, neg, val, settings, out = _setup(tmp_path, "mp")
    settings.epochs, settings.mixed_precision = 1, True
    res = build_and_train(
        {"backbone": "light", "aspect_ratios": [[2], [2]], "scales": [0.4, 0.7, 0.95]}, S,
        settings, DetectSettings(), _Crops(1), neg, val, out, seed=3,
    )
    assert np.isfinite(res["history"][0]["loss"])
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # policy restored
    model, _, meta = load_model(out)
    assert meta["train"]["mixed_precision"] is True
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert use_mixed_precision(False) is False and use_mixed_precision(True) is True
    assert use_mixed_precision("auto") == bool(tf.config.list_physical_devices("GPU"))
    with pytest.raises(ValueError, match="bubbles.train.mixed_precision"):
        use_mixed_precision("yes")


def test_min_score_above_thresholds_is_refused(tmp_path):
    model, priors, neg, val, settings, out = _setup(tmp_path, "c")
    with pytest.raises(ValueError, match="bubbles.detect.min_score"):
        train_ssd(
            model,
            priors,
            _Crops(1),
            neg,
            val,
            settings,
            out,
            seed=1,
            detect=DetectSettings(min_score=0.6),
        )


def test_detect_settings_from_config():
    s = DetectSettings.from_config({"merge_iou": 0.25, "unknown": 1})
    assert s.merge_iou == 0.25 and s.window_nms_iou == 0.45


# ------------------------------------------------------------------ whole-tile geometry
class _BrightBoxSSD:
    """Stand-in network: boxes the bright pixels of channel 0 (score 0.99, or 0.73 when the
    box touches the window edge), encoded on prior 0 so that decoding is exact."""

    def __init__(self, priors, size):
        self.priors, self.size = priors, size

    def predict(self, x, batch_size=None, verbose=0):
        from skydetect.bubbles.ssd.boxes import encode, to_centre

        out = np.zeros((len(x), len(self.priors), 6), np.float32)
        out[..., 4] = 5.0
        for i, img in enumerate(x):
            ys, xs = np.nonzero(img[..., 0] > 0.5)
            if len(xs) == 0:
                continue
            box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]) / self.size
            edge = box.min() <= 0 or box.max() >= 1
            out[i, 0, :4] = encode(to_centre(box), self.priors[:1])[0]
            out[i, 0, 4:] = [0.0, 1.0 if edge else 5.0]
        return out


def test_detect_tile_maps_boxes_back_exactly():
    from functools import partial

    from skydetect.bubbles.detect import detect_field
    from skydetect.bubbles.preprocess import preprocess_window
    from skydetect.bubbles.ssd.priors import default_boxes
    from skydetect.bubbles.windows import sliding_windows

    rng = np.random.default_rng(2)
    data = rng.normal(10, 0.1, (2, 150, 260)).astype(np.float32)
    obj = np.array([97, 41, 127, 71])  # x0 y0 x1 y1, pixel edges: columns 97..126
    data[0, obj[1] : obj[3], obj[0] : obj[2]] = 100.0
    priors = default_boxes([2], [0.5, 0.7], [[]])
    S = 64
    windows = sliding_windows(data.shape[1:], [60, 90, 150], 1 / 3)
    boxes, scores = detect_field(
        _BrightBoxSSD(priors, S),
        priors,
        data,
        windows,
        partial(preprocess_window, input_size=S, antialias=False),
        DetectSettings(min_score=0.5),
        chunk=16,
    )
    assert scores[0] > 0.99
    # boxes of 60-150 px windows resampled to 64 px: within ~1 input pixel of the truth
    np.testing.assert_allclose(boxes[0], obj, atol=150 / S + 0.5)
    assert (scores > 0.9).sum() == 1  # one box per object after merging windows and scales


def test_detections_centred_outside_the_field_are_dropped():
    from skydetect.bubbles.detect import detect_windows
    from skydetect.bubbles.ssd.boxes import encode, to_centre
    from skydetect.bubbles.ssd.priors import default_boxes

    priors = default_boxes([2], [0.5, 0.7], [[]])

    class CornerBox:  # a box in every window's top-left corner
        def predict(self, x, batch_size=None, verbose=0):
            out = np.zeros((len(x), len(priors), 6), np.float32)
            out[..., 4] = 5.0
            out[:, 0, :4] = encode(to_centre(np.array([[0.0, 0.0, 0.2, 0.2]])), priors[:1])[0]
            out[:, 0, 4:] = [0.0, 5.0]
            return out

    x0, y0, size = np.array([-20, 0, 40]), np.array([0, -20, 0]), np.array([60, 60, 60])
    inputs = np.zeros((3, 8, 8, 2), np.float32)
    settings = DetectSettings(min_score=0.5, merge_iou=0.99)
    every, _ = detect_windows(CornerBox(), priors, inputs, x0, y0, size, settings)
    kept, _ = detect_windows(
        CornerBox(), priors, inputs, x0, y0, size, settings, field_shape=(100, 100)
    )
    assert len(every) == 3 and len(kept) == 1
    np.testing.assert_allclose(kept[0], [40, 0, 52, 12], atol=1e-4)


def test_detections_table_sky_positions():
    from astropy.wcs import WCS

    from skydetect.bubbles.detect import detections_table

    w = WCS(naxis=2)
    w.wcs.ctype = ["GLON-CAR", "GLAT-CAR"]
    w.wcs.crval = [15.0, 0.0]
    w.wcs.crpix = [51.0, 31.0]  # 1-based: 0-based pixel (50, 30) is (l, b) = (15, 0)
    w.wcs.cdelt = [-8 / 3600, 8 / 3600]
    boxes = np.array([[45.5, 25.5, 55.5, 35.5], [0.0, 0.0, 15.0, 30.0]])  # centre (50.5, 30.5)
    t = detections_table(boxes, [0.9, 0.6], w, 8.0, "01500+0000")
    assert t["GLON"][0] == pytest.approx(15.0) and t["GLAT"][0] == pytest.approx(0.0, abs=1e-9)
    assert t["SIZE_ARCMIN"][0] == pytest.approx(10 * 8 / 60)
    assert t["WIDTH_ARCMIN"][1] == pytest.approx(2.0) and t["HEIGHT_ARCMIN"][1] == pytest.approx(
        4.0
    )
    # box 1 lies at larger x = smaller l (CDELT1 < 0) ... of the (x=7, y=14.5) centre
    assert t["GLON"][1] == pytest.approx(15.0 + (50 - 7.0) * 8 / 3600)
    assert t["GLAT"][1] == pytest.approx((14.5 - 30) * 8 / 3600)


def test_detections_round_trip(tmp_path):
    from astropy.wcs import WCS

    from skydetect.bubbles.detect import detections_table, read_detections

    w = WCS(naxis=2)
    w.wcs.ctype = ["GLON-CAR", "GLAT-CAR"]
    w.wcs.cdelt = [-1 / 450, 1 / 450]
    boxes = np.array([[1.0, 2.0, 11.0, 12.0]])
    path = tmp_path / "d.ecsv"
    detections_table(boxes, [0.7], w, 8.0, "x").write(path, format="ascii.ecsv")
    b, s, _ = read_detections(path)
    np.testing.assert_allclose(b, boxes)
    assert s[0] == 0.7
    detections_table(np.zeros((0, 4)), [], w, 8.0, "x").write(
        path, format="ascii.ecsv", overwrite=True
    )
    assert len(read_detections(path)[0]) == 0
    path.write_text("# %ECSV 1.0\n# ---\n# datatype:\n# - {name: A, datatype: int64}\nA\n1\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_detections(path)


# ------------------------------------------------------------------ tuning
_WORKER = """
import json, sys, time
from pathlib import Path
import numpy as np
from skydetect.bubbles.tune import run_worker

journal, worker, d = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
other = d / f"started_{1 - worker}"

def objective(overrides, number):
    (d / f"started_{worker}").touch()
    t0 = time.monotonic()
    while not other.exists():  # both workers are inside a trial at the same moment
        if time.monotonic() - t0 > 120:
            raise RuntimeError("the other worker never ran at the same time")
        time.sleep(0.05)
    return -abs(np.log10(overrides["learning_rate"]) + 3) - overrides["weight_decay"]

trials = run_worker(journal, "s", objective, n_trials=4, seed=1, worker=worker,
                    n_startup_trials=2)
(d / f"worker_{worker}.json").write_text(json.dumps(trials))
"""


def test_tune_two_concurrent_workers_share_one_journal(tmp_path):
    """Two worker processes run trials on one journal at the same time (each waits inside its
    first trial until the other has started one): every trial lands once in the study."""
    import subprocess
    import sys

    from skydetect.bubbles.tune import best_params, run_worker

    journal = tmp_path / "study.journal"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(journal), str(w), str(tmp_path)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    t0, t1 = (json.loads((tmp_path / f"worker_{w}.json").read_text()) for w in (0, 1))
    assert len(t0) == len(t1) == 4
    numbers = [t["number"] for t in t0 + t1]
    assert sorted(numbers) == list(range(8))  # no trial lost or numbered twice
    assert t0[0]["params"] != t1[0]["params"]  # workers' samplers are seeded differently
    best = best_params(journal, "s")
    assert best["n_complete"] == best["n_trials"] == 8
    assert best["value"] == pytest.approx(max(t["value"] for t in t0 + t1))
    o = best["overrides"]
    assert o["batch_negatives"] == round(best["params"]["negative_ratio"] * o["batch_bubbles"])

    # seeded: the same worker on a fresh journal proposes the same first parameters
    def objective(overrides, number):
        return 0.0

    again = run_worker(tmp_path / "b.journal", "s", objective, 1, seed=1, worker=0)
    assert again[0]["params"] == t0[0]["params"]
    with pytest.raises(FileNotFoundError):
        best_params(tmp_path / "none.journal", "s")


def test_study_name_changes_with_settings_and_data(tmp_path):
    from skydetect.bubbles.tune import (
        best_params,
        data_digest,
        run_worker,
        settings_key,
        study_name,
        study_of_workers,
    )

    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    a.write_bytes(b"tile one")
    b.write_bytes(b"tile two")
    cfg = {"train": {"learning_rate": 1e-3, "threads": 2, "mem_mb": 8000}, "seed": 1}
    base = study_name("ssd_x", settings_key(cfg), data_digest([a, b]))
    assert base.startswith("ssd_x-") and base == study_name(
        "ssd_x", settings_key(cfg), data_digest([b, a])
    )
    # job sizes do not matter; settings and data contents do
    same = {"train": {"learning_rate": 1e-3, "threads": 8, "mem_mb": 100}, "seed": 1}
    assert study_name("ssd_x", settings_key(same), data_digest([a, b])) == base
    other = {"train": {"learning_rate": 2e-3, "threads": 2}, "seed": 1}
    assert study_name("ssd_x", settings_key(other), data_digest([a, b])) != base
    b.write_bytes(b"tile 2 regenerated")
    new = study_name("ssd_x", settings_key(cfg), data_digest([a, b]))
    assert new != base
    # a stale study in the same journal is never mixed into the new one
    journal = tmp_path / "j.journal"
    run_worker(journal, base, lambda o, n: 1.0, 2, seed=1)
    run_worker(journal, new, lambda o, n: 0.5, 1, seed=1)
    assert best_params(journal, new)["n_trials"] == 1
    assert best_params(journal, new)["value"] == 0.5
    assert study_of_workers([{"study": new}, {"study": new}]) == new
    with pytest.raises(ValueError, match="different studies"):
        study_of_workers([{"study": new}, {"study": base}])


# ------------------------------------------------------------------ scales
def test_uncovered_catalogue_size_is_flagged():
    from skydetect.bubbles.scales import check_scales, covered

    shape = (900, 1350)  # 2° x 3° at 8"
    sizes = np.array([0.4, 0.55, 1.2, 3.0, 11.5])
    # the old default: 12' windows are too large for bubbles under ~1'
    ok = covered(sizes, [12, 24, 48], 8.0, shape)
    np.testing.assert_array_equal(ok, [False, False, True, True, True])
    with pytest.raises(ValueError, match=r"MajAxis 0\.40, 0\.55 arcmin \(2 of 5\)") as err:
        check_scales(sizes, [12, 24, 48], 8.0, shape)
    assert "bubbles.windows.sizes_arcmin" in str(err.value)
    check_scales(sizes, [4.5, 13.5, 40], 8.0, shape)  # covers 0.4'-11.5'
    # and the largest: without a window of >= 2 x 1.7 x 11.5' it is not covered
    with pytest.raises(ValueError, match=r"11\.50"):
        check_scales(sizes, [4.5, 13.5], 8.0, shape)


def test_coverage_is_the_crop_code_range():
    """covered() says yes exactly for windows within the sides crop_geometry draws."""
    from skydetect.bubbles.crops import crop_geometry
    from skydetect.bubbles.scales import covered, crop_side_range

    rng = np.random.default_rng(4)
    for maj_px in (1.5, 4.0, 30.0, 200.0):
        half_box = 1.3 * maj_px
        box = np.array([450 - half_box, 300 - half_box, 450 + half_box, 300 + half_box])
        sides = [crop_geometry(rng, box, maj_px, (600, 900), (1.7, 5.9))[2] for _ in range(400)]
        lo, hi = crop_side_range(maj_px, (1.7, 5.9), 1.3, 600)
        assert lo <= min(sides) and max(sides) <= hi
        assert min(sides) - lo <= 0.03 * hi + 1 and hi - max(sides) <= 0.03 * hi + 1
        maj_arcmin = maj_px * 8 / 60
        cases = [(lo, True), (hi, True), (lo - 2, False)] + ([(hi + 2, False)] if hi < 598 else [])
        for w_px, want in cases:
            got = covered([maj_arcmin], [w_px * 8 / 60], 8.0, (600, 900))[0]
            assert got == want, (maj_px, w_px)


def test_config_windows_cover_the_configured_sizes():
    from pathlib import Path

    import yaml

    from skydetect.bubbles.scales import check_config_scales, window_sizes_for

    root = Path(__file__).resolve().parents[1]
    for path in (root / "config/config.yaml", root / "tests/workflow/config.yaml"):
        cfg = yaml.safe_load(path.read_text())
        b = cfg["bubbles"]
        full = {
            "source": b.get("source", "simulate"),
            "simulate": {**{"pixel_arcsec": 1.2, "width_deg": 3.0, "height_deg": 2.0,
                            "min_majaxis_arcmin": 0.2, "max_majaxis_arcmin": 11.5},
                         **b.get("simulate", {})},
            "windows": {"box_scale": 1.3, **b["windows"]},
            "negatives": {"half_width_factor": [1.7, 5.9], **b.get("negatives", {})},
        }
        check_config_scales(full)
        full["windows"]["sizes_arcmin"] = [48]
        with pytest.raises(ValueError, match="bubbles.windows.sizes_arcmin"):
            check_config_scales(full)
    # the proposed sizes do cover what they are proposed for
    for lo, hi in ((0.13, 10.62), (0.4, 11.5)):
        full = {"source": "simulate", "windows": {"sizes_arcmin": window_sizes_for(lo, hi)},
                "simulate": {"pixel_arcsec": 1.2, "min_majaxis_arcmin": lo,
                             "max_majaxis_arcmin": hi},
                "negatives": {"half_width_factor": [1.7, 5.9]}}
        check_config_scales(full)
