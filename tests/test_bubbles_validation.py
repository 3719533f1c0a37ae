"""Bubble validation: the one-to-one IoU rule of the epoch/threshold choice, the bounded
validation sample, the final threshold check on every window, and validation fields streamed
from their mosaic scoring as in memory."""

from types import SimpleNamespace

import numpy as np
import pytest
from bubble_fixtures import PP

from skydetect.bubbles import validation as V
from skydetect.bubbles.detect import DetectSettings
from skydetect.bubbles.preprocess import preprocess_windows
from skydetect.bubbles.scales import crop_side_range, framing_windows
from skydetect.bubbles.train_data import ValidationField, validation_sample
from skydetect.bubbles.windows import field_truth, make_windows, write_windows


# ------------------------------------------------------------------ the IoU rule
def _field(truth, clear):
    return ValidationField(
        "v", np.zeros((1, 8, 8, 2), np.float32), np.zeros(1, int), np.zeros(1, int),
        np.full(1, 400), np.asarray(truth, float), np.asarray(clear, bool),
    )


def test_validation_f2_uses_the_one_to_one_iou_rule(monkeypatch):
    """A box covering a whole bubble (and far more) matches under the reference rule but not
    at IoU >= 0.5; two boxes on one bubble: one hit, one false positive; a box on an unclear
    bubble only is "don't care"."""
    truth = [[0, 0, 30, 30], [100, 100, 130, 130], [200, 200, 230, 230]]
    clear = [True, True, False]
    pred = np.array(
        [
            [-60, -60, 90, 90],  # covers bubble 0 entirely, IoU 0.04
            [100, 100, 130, 130],  # bubble 1 exactly
            [101, 101, 131, 131],  # bubble 1 again: a false positive one-to-one
            [200, 200, 230, 230],  # the unclear bubble: don't care
        ],
        float,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    monkeypatch.setattr(V, "detect_windows", lambda *a, **k: (pred, scores))
    thr, c = V.validate(None, None, [_field(truth, clear)], DetectSettings(), [0.5])
    assert thr == 0.5
    assert (c.n_truth, c.n_found, c.n_pred_matched, c.n_pred_unclear) == (2, 1, 1, 1)
    assert c.precision == pytest.approx(1 / 3) and c.recall == pytest.approx(0.5)
    # the reference rule would have found both clear bubbles
    from skydetect.bubbles.evaluate import count

    ref = count(pred, scores, np.asarray(truth, float), np.asarray(clear), rule="reference")
    assert ref.n_found == 2
    # the IoU threshold of bubbles.evaluate is used: the boxes on bubble 1 have IoU 0.68 and
    # 0.88 once shifted by 3 and 1 pixels; at 0.95 neither matches
    pred[1] += 3
    _, c5 = V.validate(None, None, [_field(truth, clear)], DetectSettings(), [0.5], 0.5)
    _, c95 = V.validate(None, None, [_field(truth, clear)], DetectSettings(), [0.5], 0.95)
    assert (c5.n_found, c95.n_found) == (1, 0)


def test_final_threshold_check_scores_every_window(monkeypatch):
    """The final check re-chooses the threshold on the full validation and records the sample's
    F2 beside it."""
    seen = []

    def fake(model, priors, fields, detect, thresholds, iou_threshold):
        seen.append((len(fields), iou_threshold))
        return 0.65, SimpleNamespace(f2=0.4, precision=0.3, recall=0.5)

    monkeypatch.setattr(V, "validate", fake)
    full = [_field([[0, 0, 30, 30]], [True])] * 3
    settings = SimpleNamespace(thresholds=[0.5, 0.65], iou_threshold=0.6)
    thr, f2, rec = V.final_threshold(None, None, full, DetectSettings(), settings, 0.8)
    assert seen == [(3, 0.6)] and (thr, f2) == (0.65, 0.4)
    assert rec["val_f2_sample"] == 0.8 and rec["val_windows"] == 3


# ------------------------------------------------------------------ the bounded sample
def _windows(width_px, n_bubbles=6, seed=0, pixel=3.0):
    """Window arrays of one field ``width_px`` wide with ``n_bubbles`` bubbles near x < 600."""
    rng = np.random.default_rng(seed)
    maj = rng.uniform(0.4, 2.0, n_bubbles)  # arcmin
    cx, cy = rng.uniform(80, 520, n_bubbles), rng.uniform(80, 320, n_bubbles)
    half = 1.3 * maj * 60 / pixel
    boxes = np.c_[cx - half, cy - half, cx + half, cy + half]
    truth = {
        "shape": (400, width_px), "pixel_arcsec": pixel, "boxes": boxes,
        "clear": np.arange(n_bubbles) % 2 == 0, "mwp": np.array([f"b{i}" for i in range(n_bubbles)]),
        "glon": np.zeros(n_bubbles), "glat": np.zeros(n_bubbles), "maj_arcmin": maj,
    }
    return make_windows({"f": truth}, [3.5, 12, 40], 1 / 3)


def test_sample_keeps_every_framing_window_and_bounds_the_rest():
    win = _windows(1200)
    t = win["truth"]["f"]
    maj_px = t["maj_arcmin"] * 60 / t["pixel_arcsec"]
    framing = framing_windows(
        win["x0"], win["y0"], win["size"], t["boxes"], maj_px, (1.7, 5.9), 1.3, 400
    )
    assert 0 < framing.sum() < len(framing)
    # by hand for one bubble: a framing window holds its centre at a trained side
    lo, hi = crop_side_range(maj_px, (1.7, 5.9), 1.3, 400)
    cx = (t["boxes"][:, 0] + t["boxes"][:, 2]) / 2
    cy = (t["boxes"][:, 1] + t["boxes"][:, 3]) / 2
    inside = (
        (cx[:, None] >= win["x0"]) & (cx[:, None] < win["x0"] + win["size"])
        & (cy[:, None] >= win["y0"]) & (cy[:, None] < win["y0"] + win["size"])
        & (win["size"] >= lo[:, None]) & (win["size"] <= hi[:, None])
    )
    assert np.array_equal(framing, inside.any(axis=0))

    sel = validation_sample(win, 25, seed=3)["f"]
    assert set(np.flatnonzero(framing)) <= set(sel)  # every bubble-framing window kept
    assert len(sel) == framing.sum() + 25
    assert np.array_equal(sel, validation_sample(win, 25, seed=3)["f"])  # reproducible
    assert not np.array_equal(sel, validation_sample(win, 25, seed=4)["f"])
    # no fewer others than asked, or null: no sample (every window is validated)
    assert validation_sample(win, int((~framing).sum()), seed=3) is None
    assert len(validation_sample(win, int((~framing).sum()) - 1, seed=3)["f"]) == len(framing) - 1
    assert validation_sample(win, None, seed=3) is None
    with pytest.raises(ValueError, match="validation_background_windows"):
        validation_sample(win, -1, seed=3)


def test_sample_size_does_not_grow_with_the_field():
    """The same bubbles in a field 4 times wider: 4x the windows, the same sample size."""
    small, large = _windows(1200), _windows(4800)
    assert len(large["x0"]) > 3 * len(small["x0"])
    n_small = len(validation_sample(small, 40, seed=1)["f"])
    n_large = len(validation_sample(large, 40, seed=1)["f"])
    assert n_small == n_large


def test_training_validates_the_sample_and_checks_the_threshold_on_every_window(
    tmp_path, monkeypatch
):
    """train_ssd: the epochs' F2 on the sample, the saved threshold from every window."""
    pytest.importorskip("tensorflow")
    from ssd_fixtures import _Crops, _setup

    import skydetect.bubbles.train as T

    model, priors, neg, val, settings, out = _setup(tmp_path, "s")
    sample = [val[0]]
    full = [val[0], val[0]]
    seen = []

    def fake_epoch(model, priors, fields, detect, thresholds, iou_threshold):
        seen.append(("epoch", len(fields)))
        return 0.9, SimpleNamespace(f2=0.7, precision=0.7, recall=0.7)

    def fake_full(model, priors, fields, detect, thresholds, iou_threshold):
        seen.append(("full", len(fields)))
        return 0.55, SimpleNamespace(f2=0.6, precision=0.5, recall=0.65)

    monkeypatch.setattr(T, "validate", fake_epoch)
    monkeypatch.setattr(V, "validate", fake_full)
    res = T.train_ssd(
        model, priors, _Crops(1), neg, full, settings, out, seed=11, validation_sample=sample
    )
    assert seen == [("epoch", 1), ("epoch", 1), ("full", 2)]
    assert res["threshold"] == 0.55 and res["val_f2"] == 0.6 and res["val_f2_sample"] == 0.7
    import json

    meta = json.loads((out / "model.json").read_text())
    assert meta["threshold"] == 0.55 and meta["val_windows"] == 6


# ------------------------------------------------------------------ window sides by source
def _bubbles_config(source, sizes):
    from pathlib import Path

    import yaml

    from skydetect.config import validate_config

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config/config.yaml").read_text())
    cfg["bubbles"]["source"] = source
    cfg["bubbles"]["windows"]["sizes_arcmin"] = sizes
    return validate_config(cfg, root / "config/schema.yaml")["bubbles"]


def test_download_windows_come_from_the_catalogue_size_range():
    """source download without sides of its own: sides covering MWP DR2's clear bubbles
    (0.13'-10.6') instead of the parse-time stop the mock's [3.5, 12, 40] gave; sides given
    explicitly are still checked."""
    from skydetect.bubbles.scales import (
        MWP_DR2_CLEAR_MAJAXIS,
        check_config_scales,
        check_scales,
        window_sizes,
    )

    for sizes in ({"simulate": [3.5, 12, 40]}, None):
        b = _bubbles_config("download", sizes)
        got, given = window_sizes(b)
        assert not given
        assert check_config_scales(b) == got
        lo, hi = MWP_DR2_CLEAR_MAJAXIS
        check_scales(np.geomspace(lo, hi, 200), got, 1.2, (6000, 9000))  # covered
        assert got[0] < 2 * 5.9 * lo  # the smallest bubbles fit the smallest window
    # the mock keeps its own sides; given ones for every source are checked
    b = _bubbles_config("simulate", {"simulate": [3.5, 12, 40]})
    assert window_sizes(b) == ([3.5, 12.0, 40.0], True)
    b = _bubbles_config("download", [3.5, 12, 40])
    with pytest.raises(ValueError, match=r"MajAxis 0\.13-0\.29 arcmin .*sizes_arcmin"):
        check_config_scales(b)
    assert check_config_scales(b, check=False) == [3.5, 12.0, 40.0]
    from skydetect.config import ConfigError

    with pytest.raises(ConfigError, match="sizes_arcmin"):
        _bubbles_config("download", {"download": [0]})
    with pytest.raises(ConfigError, match="sizes_arcmin"):
        _bubbles_config("download", {"mock": [3.5]})


def test_the_sample_is_the_same_windows_preprocessed_alike(tmp_path):
    """load_validation with a selection: those windows, preprocessed as in the full set."""
    from skydetect.bubbles.train_data import load_validation
    from skydetect.bubbles.windows import write_windows
    from skydetect.io.spitzer import SpitzerField, field_wcs, write_field

    win = _windows(1200)
    wcs, _ = field_wcs(30, 0, 1.0, 1 / 3, 3.0)
    data = np.random.default_rng(2).normal(5, 1, (2, 400, 1200)).astype(np.float32)
    write_field(tmp_path / "f.fits", SpitzerField(data, wcs, 3.0, "f"))
    write_windows(tmp_path / "v.h5", win, {})
    pp = {"input_size": 16}
    sel = validation_sample(win, 5, seed=0)
    full = load_validation(tmp_path / "v.h5", {"f": tmp_path / "f.fits"}, pp, cache=False)[0]
    samp = load_validation(tmp_path / "v.h5", {"f": tmp_path / "f.fits"}, pp, select=sel)[0]
    assert np.array_equal(samp.x0, full.x0[sel["f"]]) and np.array_equal(samp.size, full.size[sel["f"]])
    np.testing.assert_array_equal(samp.truth, full.truth)  # scored against the whole field
    k = [0, len(sel["f"]) - 1]
    np.testing.assert_allclose(samp.inputs[k], full.inputs[sel["f"][k]], rtol=1e-6)


# ------------------------------------------------------------------ bounded memory
def test_streaming_validation_gives_the_in_memory_f2(tmp_path, field_files, spitzer_field, truth):
    import tensorflow as tf

    from skydetect.bubbles.detect import DetectSettings
    from skydetect.bubbles.ssd.model import build_ssd
    from skydetect.bubbles.train import ValidationField, load_validation, validate

    arrays = make_windows({"03000+0000": field_truth(spitzer_field, truth)}, [6, 12], 1 / 3)
    write_windows(tmp_path / "v.h5", arrays, {})
    path = field_files[0] / "aligned.fits"
    streamed = load_validation(tmp_path / "v.h5", {"03000+0000": path}, PP)
    assert not isinstance(streamed[0].inputs, np.ndarray)  # windows are made on demand
    f = streamed[0]
    in_memory = ValidationField(
        f.name,
        preprocess_windows(spitzer_field.data, f.x0, f.y0, f.size, **PP),
        f.x0,
        f.y0,
        f.size,
        f.truth,
        f.clear,
    )
    tf.keras.utils.set_random_seed(0)
    model, priors = build_ssd({"backbone": "light", "input_size": PP["input_size"]})
    # small batches: the stream is cut into several chunks by the network loop
    settings = DetectSettings(min_score=0.05, batch_size=4)
    thresholds = [0.05, 0.3, 0.5, 0.7]
    thr_a, counts_a = validate(model, priors, [in_memory], settings, thresholds)
    thr_b, counts_b = validate(model, priors, streamed, settings, thresholds)
    assert counts_a.n_pred > 0  # random weights still box something at a low threshold
    assert (thr_a, counts_a) == (thr_b, counts_b)
    assert counts_a.f2 == counts_b.f2
