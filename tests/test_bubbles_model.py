"""Bubble model side: F2 matching rule, window merging, training with kill-and-resume."""

import json

import numpy as np
import pytest

import skydetect  # noqa: F401  (before TensorFlow)
from skydetect.bubbles import evaluate as E
from skydetect.bubbles.detect import DetectSettings, merge_detections, window_to_tile
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
            [200, 200, 230, 230],  # the unclear bubble: not in recall, not a match for precision
            [500, 500, 520, 520],  # nothing
        ]
    )
    scores = np.linspace(0.9, 0.5, 5)
    c = E.count(pred, scores, truth, clear)
    assert (c.n_truth, c.n_found, c.n_pred, c.n_pred_matched) == (2, 2, 5, 2)
    assert c.n_not_in_catalogue == 2  # box 1 (too little) and box 4
    assert c.precision_catalogue == pytest.approx(3 / 5)
    assert c.recall == 1.0 and c.precision == pytest.approx(0.4)
    assert c.f2 == pytest.approx(5 * 0.4 * 1.0 / (4 * 0.4 + 1.0))
    # without the huge box, bubble 1 is missed
    c = E.count(pred[[0, 1, 3, 4]], scores[[0, 1, 3, 4]], truth, clear)
    assert (c.n_found, c.n_pred_matched) == (1, 1)
    assert c.recall == 0.5 and c.precision == 0.25
    assert E.f_beta(0.25, 0.5) == pytest.approx(5 * 0.125 / (1.0 + 0.5))
    assert E.f_beta(0.0, 0.0) == 0.0
    assert E.count(np.zeros((0, 4)), [], truth, clear).f2 == 0.0


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
                boxes.append(window_to_tile(unit[None], x0, y0, s))
                scores.append(rng.uniform(0.6, 0.99))
    boxes = np.concatenate(boxes)
    assert len(boxes) > 10  # each object seen in many windows and both scales
    merged, s = merge_detections(boxes, scores, 0.3)
    assert len(merged) == 2
    assert E.count(merged, s, objects, rule="iou", iou_threshold=0.7).n_found == 2


def test_window_to_tile_exact_inverse():
    b = window_to_tile(np.array([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]]), 10, 20, 200)
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
    neg = np.zeros((6, S, S, 2), np.float32)
    w = np.array([1, 1, 0, 0, 0, 0.0])
    s = TrainSettings(batch_bubbles=2, batch_negatives=3)
    batches = list(epoch_batches(xs, bs, neg, w, s, np.random.default_rng(1)))
    assert [len(x) for x, _ in batches] == [5, 5, 4]  # 2+3, 2+3, 1+3
    assert sum(len(b) for _, bx in batches for b in bx) == 5  # every bubble box once
    with pytest.raises(ValueError, match="weights"):
        list(epoch_batches(xs, bs, neg, np.zeros(6), s, np.random.default_rng(1)))


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

    from skydetect.bubbles.detect import detect_tile
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
    boxes, scores = detect_tile(
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
def test_tune_two_workers_share_one_journal(tmp_path):
    from skydetect.bubbles.tune import best_params, run_worker

    journal = tmp_path / "study.journal"

    def objective(overrides, number):  # best near lr = 1e-3, wd small, ratio 1
        return -abs(np.log10(overrides["learning_rate"]) + 3) - overrides["weight_decay"]

    t0 = run_worker(journal, "s", objective, n_trials=3, seed=1, worker=0, n_startup_trials=2)
    t1 = run_worker(journal, "s", objective, n_trials=3, seed=1, worker=1, n_startup_trials=2)
    assert len(t0) == len(t1) == 3
    assert {t["number"] for t in t0}.isdisjoint({t["number"] for t in t1})
    assert t0[0]["params"] != t1[0]["params"]  # workers' samplers are seeded differently
    best = best_params(journal, "s")
    assert best["n_complete"] == 6
    assert best["value"] == pytest.approx(max(t["value"] for t in t0 + t1))
    o = best["overrides"]
    assert o["batch_negatives"] == round(best["params"]["negative_ratio"] * o["batch_bubbles"])
    # seeded: the same worker on a fresh journal proposes the same first parameters
    again = run_worker(tmp_path / "b.journal", "s", objective, 1, seed=1, worker=0)
    assert again[0]["params"] == t0[0]["params"]
    with pytest.raises(FileNotFoundError):
        best_params(tmp_path / "none.journal", "s")
