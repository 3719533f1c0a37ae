"""skydetect.bubbles.train: SSD training with validation, patience, kill-and-resume, SSD300."""

import json

import numpy as np
import pytest
from ssd_fixtures import S, _Crops, _setup

import skydetect  # noqa: F401  (before TensorFlow)
from skydetect.bubbles.detect import DetectSettings
from skydetect.bubbles.train import TrainSettings, ValidationField, train_ssd

tf = pytest.importorskip("tensorflow")


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


def test_validating_less_often_leaves_the_loss_curve_unchanged(tmp_path):
    """Validation every 3rd epoch instead of every epoch saves its cost and nothing else: the
    training draws no random number and moves no weight in validation, so every epoch's
    training loss is the same to the last bit."""
    curves = []
    for every in (1, 3):
        model, priors, neg, val, settings, out = _setup(tmp_path, f"every{every}")
        settings.epochs, settings.patience, settings.validate_every = 3, 10, every
        res = train_ssd(model, priors, _Crops(2), neg, val, settings, out, seed=11)
        curves.append([r["loss"] for r in res["history"]])
        n_validated = sum(np.isfinite(r["val_f2"]) for r in res["history"])
        assert n_validated == (3 if every == 1 else 1)
    assert len(curves[0]) == 3 and curves[0][-1] != curves[0][0]
    assert curves[0] == curves[1]


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
            "v",
            x,
            np.zeros(1, int),
            np.zeros(1, int),
            np.full(1, size),
            np.array([[72.0, 72.0, 228.0, 228.0]]),
            np.ones(1, bool),
        )
    ]


def test_vgg16_ssd300_trains_one_step_on_cpu(tmp_path):
    """The reference's SSD300 (VGG16, 8732 boxes) trains end to end: one optimiser step with
    its loss changes the weights, validation and saving run (thin layers to stay quick)."""
    from skydetect.bubbles.train import build_and_train

    settings = TrainSettings(
        epochs=1,
        batch_bubbles=2,
        batch_negatives=1,
        learning_rate=1e-3,
        thresholds=[0.5],
        mixed_precision=False,
    )
    neg = {"inputs": np.full((2, 300, 300, 2), 0.2, np.float32), "weight": np.ones(2)}
    res = build_and_train(
        {"backbone": "vgg16", "width": 0.0625},
        300,
        settings,
        DetectSettings(min_score=0.3),
        _BigCrops(300),
        neg,
        _big_validation(300),
        tmp_path / "vgg",
        seed=2,
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
        not np.allclose(a, b)
        for a, b in zip(fresh.get_weights(), trained.get_weights(), strict=True)
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
        {"backbone": "light", "aspect_ratios": [[2], [2]], "scales": [0.4, 0.7, 0.95]},
        S,
        settings,
        DetectSettings(),
        _Crops(1),
        neg,
        val,
        out,
        seed=3,
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
