"""Input pipeline, seeded and resumable training, learning-curve figure."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import skydetect  # noqa: F401  (before tensorflow)

tf = pytest.importorskip("tensorflow")
from skydetect.clusters import models as M  # noqa: E402
from skydetect.clusters import pipeline as P  # noqa: E402
from skydetect.clusters import train as T  # noqa: E402
from skydetect.plots.training import plot_learning_curve  # noqa: E402

BANDS = ("143", "217", "353")
SIZE = 32


def make_dataset(path, n, seed=0, size=SIZE, bands=BANDS):
    """Synthetic dataset file in the docs/dataflow.md layout: a decrement in band 0 and an
    increment in band 2 at a disk-shaped 'cluster'; channel 1 carries the patch index / n."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    x = rng.normal(0, 1, (n, size, size, len(bands))).astype(np.float32)
    m = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.integers(5, size - 5, 2)
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        m[i] = r2 <= 9
        x[i, ..., 0] -= 3 * np.exp(-r2 / 8)
        x[i, ..., 2] += 3 * np.exp(-r2 / 8)
        x[i, ..., 1] = i / n
    with h5py.File(path, "w") as f:
        f["inputs"] = x
        f["masks"] = m
        f.attrs["bands"] = list(bands)
        f.attrs["size"] = size
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return make_dataset(d / "train.h5", 64, seed=1), make_dataset(d / "validation.h5", 16, seed=2)


MODEL = {"architecture": "unet", "filter_num": [4, 8, 16]}
TRAIN = {
    "loss": "dice_loss",
    "optimizer": "adam",
    "learning_rate": 1e-2,
    "batch_size": 16,
    "epochs": 3,
    "patience": 10,
    "lr_patience": 1,
}


# ---------------------------------------------------------------- input pipeline


def test_dataset_info_and_layout_errors(tmp_path, data):
    info = P.dataset_info(data[0])
    assert (info.n, info.size, info.bands) == (64, SIZE, BANDS)
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        P.dataset_info(tmp_path / "nope.h5")
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["inputs"] = np.zeros((2, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="bad.h5: missing dataset 'masks'"):
        P.dataset_info(bad)
    with h5py.File(bad, "a") as f:
        f["masks"] = np.zeros((2, 8, 7), np.uint8)
    with pytest.raises(ValueError, match="'masks' shape"):
        P.dataset_info(bad)
    with h5py.File(bad, "a") as f:
        del f["masks"]
        f["masks"] = np.zeros((2, 8, 8), np.uint8)
        f.attrs["bands"] = ["143", "217"]
    with pytest.raises(ValueError, match="attribute 'bands'"):
        P.dataset_info(bad)


def _epoch(src):
    xs, ms = zip(*src(), strict=True)
    return np.concatenate(xs), np.concatenate(ms)


def test_batches_cover_every_patch_once_with_matching_augmentation(data):
    src = P.BatchSource(data[0], batch_size=10, seed=3, block=16, window=2)
    assert len(src) == 7
    x, m = _epoch(src)
    assert x.shape == (64, SIZE, SIZE, 3) and m.shape == (64, SIZE, SIZE, 1)
    ids = np.rint(x[:, 0, 0, 1] * 64).astype(int)
    assert sorted(ids) == list(range(64))  # every patch exactly once
    assert not np.array_equal(ids, np.arange(64))  # shuffled
    with h5py.File(data[0]) as f:
        x0, m0 = f["inputs"][:], f["masks"][:]
    n_aug = 0
    for j, i in enumerate(ids):
        # the input and its mask went through the same one of the 8 flips/rotations
        matches = [
            k + 4 * fl
            for k in range(4)
            for fl in (0, 1)
            if np.array_equal(P.augment(x0[i], m0[i], k, bool(fl))[0], x[j])
            and np.array_equal(P.augment(x0[i], m0[i], k, bool(fl))[1], m[j, ..., 0])
        ]
        assert matches, f"patch {i}: input and mask transformed differently"
        n_aug += 0 not in matches
    assert n_aug > 32  # 7 of 8 transforms are not the identity


def test_batch_order_is_seeded_per_epoch(data):
    a = P.BatchSource(data[0], 16, seed=3)
    b = P.BatchSource(data[0], 16, seed=3)
    xa0, xb0 = _epoch(a)[0], _epoch(b)[0]
    np.testing.assert_array_equal(xa0, xb0)
    xa1 = _epoch(a)[0]
    assert not np.array_equal(xa0, xa1)  # another epoch, another order
    resumed = P.BatchSource(data[0], 16, seed=3, first_epoch=1)
    np.testing.assert_array_equal(_epoch(resumed)[0], xa1)


def test_validation_source_is_plain(data):
    x, m = _epoch(P.BatchSource(data[1], 7, shuffle=False, augment=False))
    with h5py.File(data[1]) as f:
        np.testing.assert_array_equal(x, f["inputs"][:])
        np.testing.assert_array_equal(m[..., 0], f["masks"][:])


# ---------------------------------------------------------------- training


class Interrupt(tf.keras.callbacks.Callback):
    """Simulates a job killed right after the checkpoint of epoch ``after`` (1-based)."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt("killed")


def _weights(model_dir):
    return M.load_model(model_dir).get_weights()


@pytest.fixture(scope="module")
def reference_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    summary = T.train(*data, out, MODEL, TRAIN, seed=11, normalisation={"method": "mad"})
    return out, summary


def test_training_writes_outputs_and_learns(reference_run):
    out, summary = reference_run
    for name in ("weights.h5", "model.json", "history.csv"):
        assert (out / name).is_file()
    assert not summary["resumed"] and summary["epochs_done"] == 3
    hist = T.read_history(out / "history.csv")
    assert [r["epoch"] for r in hist] == [0, 1, 2]
    assert {"loss", "val_loss", "dice", "val_dice", "precision", "val_recall", "lr"} <= set(hist[0])
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert max(r["val_dice"] for r in hist) > 0.6  # the disks are easy to find
    info = json.loads((out / "model.json").read_text())
    assert info["bands"] == list(BANDS) and info["input_size"] == SIZE
    assert info["normalisation"] == {"method": "mad"}
    assert info["training"]["seed"] == 11 and info["params"]["filter_num"] == [4, 8, 16]
    # the saved weights are those of the best validation epoch
    best = min(hist, key=lambda r: r["val_loss"])
    assert info["training"]["best_epoch"] == best["epoch"]


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_other_weights(data, reference_run, tmp_path):
    T.train(*data, tmp_path / "a", MODEL, TRAIN, seed=11)
    for a, b in zip(_weights(reference_run[0]), _weights(tmp_path / "a"), strict=True):
        np.testing.assert_array_equal(a, b)
    T.train(*data, tmp_path / "b", MODEL, {**TRAIN, "epochs": 1}, seed=12)
    T.train(*data, tmp_path / "c", MODEL, {**TRAIN, "epochs": 1}, seed=11)
    assert not np.array_equal(_weights(tmp_path / "b")[0], _weights(tmp_path / "c")[0])


def _plain_loss_curve(data, train_p, seed):
    """The loss curve of a plain loop: the same network, seed and batches, but every batch
    pulled from :class:`BatchSource` in Python and fed to ``train_on_batch`` one at a time
    (no ``tf.data`` stream, no prefetch, no callbacks)."""
    import tensorflow as tf

    train_p = T.train_params(train_p)
    _, _, data_seed = T._seed_and_precision(tf, train_p, seed)
    info = P.dataset_info(data[0])
    _, net, _, _ = T._compiled_network(tf, info, M.model_params(MODEL), train_p)
    src = P.BatchSource(data[0], train_p["batch_size"], seed=data_seed, augment=True)
    curve = []
    for _ in range(int(train_p["epochs"])):
        net.reset_metrics()
        for x, m in src():
            logs = net.train_on_batch(x, m, reset_metrics=False, return_dict=True)
        curve.append(logs["loss"])
    return np.array(curve)


def test_training_loop_gives_the_loss_curve_of_a_plain_loop(data, tmp_path):
    """The training loop (batches streamed through ``tf.data`` with prefetch, Keras ``fit``,
    checkpoint and history callbacks) trains exactly as a plain loop over the same batches: a
    batch reordered, dropped or augmented differently, or an epoch counter advanced by the
    prefetch, moves the curve. Tolerance: float32 summation order only."""
    train_p = {**TRAIN, "lr_patience": 10}  # no learning-rate change between epochs
    T.train(*data, tmp_path / "run", MODEL, train_p, seed=5)
    fitted = np.array([r["loss"] for r in T.read_history(tmp_path / "run" / "history.csv")])
    plain = _plain_loss_curve(data, train_p, seed=5)
    assert len(fitted) == len(plain) == TRAIN["epochs"]
    assert fitted[-1] < fitted[0]  # it learns: the comparison is not of constants
    np.testing.assert_allclose(fitted, plain, rtol=1e-4)


def test_killed_run_resumes_from_checkpoint(data, reference_run, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        T.train(*data, out, MODEL, TRAIN, seed=11, extra_callbacks=[Interrupt(after=2)])
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and not (out / "weights.h5").exists()
    # a kill between the history row and the checkpoint leaves a row of an unfinished epoch
    with open(out / "checkpoint" / "history.csv", "a", newline="") as fh:
        head = next(csv.reader(open(out / "checkpoint" / "history.csv")))
        csv.writer(fh).writerow(["2"] + ["0.5"] * (len(head) - 1))
    summary = T.train(*data, out, MODEL, TRAIN, seed=11)
    assert summary["resumed"] and summary["initial_epoch"] == 2
    epochs = [r["epoch"] for r in T.read_history(out / "history.csv")]
    assert epochs == [0, 1, 2]  # continued, no duplicate epoch
    # and the result is exactly that of the uninterrupted run (optimizer state, lr, data order)
    for a, b in zip(_weights(reference_run[0]), _weights(out), strict=True):
        np.testing.assert_array_equal(a, b)
    ref = T.read_history(reference_run[0] / "history.csv")
    assert T.read_history(out / "history.csv")[2]["val_loss"] == ref[2]["val_loss"]


@pytest.mark.slow
def test_more_epochs_extend_a_finished_run_and_config_change_restarts(
    data, reference_run, tmp_path
):
    out = tmp_path / "run"
    T.train(*data, out, MODEL, {**TRAIN, "epochs": 2}, seed=11)
    summary = T.train(*data, out, MODEL, {**TRAIN, "epochs": 3}, seed=11)
    assert summary["resumed"] and summary["initial_epoch"] == 2 and summary["epochs_done"] == 3
    summary = T.train(*data, out, MODEL, {**TRAIN, "epochs": 3, "learning_rate": 1e-3}, seed=11)
    assert not summary["resumed"] and summary["initial_epoch"] == 0


def test_early_stopping_keeps_best_epoch(data, tmp_path):
    # a learning rate far too large: validation loss stalls, early stopping ends the run
    params = {**TRAIN, "optimizer": "sgd", "learning_rate": 50.0, "epochs": 6, "patience": 1}
    T.train(*data, tmp_path, MODEL, params, seed=3)
    hist = T.read_history(tmp_path / "history.csv")
    assert len(hist) < 6
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["training"]["best_epoch"] == min(hist, key=lambda r: r["val_loss"])["epoch"]
    # restarting an early-stopped run does not train further
    summary = T.train(*data, tmp_path, MODEL, params, seed=3)
    assert summary["epochs_done"] == len(hist)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["focal_tversky_loss", "combo_loss"])
def test_deep_supervision_and_sgd_train(data, tmp_path, loss):
    model = {"architecture": "unet_plus", "filter_num": [4, 8, 16], "deep_supervision": True}
    params = {**TRAIN, "loss": loss, "optimizer": "sgd", "learning_rate": 0.05, "epochs": 1}
    T.train(*data, tmp_path, model, params, seed=1)
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["n_outputs"] == 3
    loaded = M.load_model(tmp_path)
    assert len(loaded.outputs) == 1
    # the validation loss is the mean of the loss over the three outputs (equal weights)
    from skydetect.clusters.losses import get_loss

    full = M.load_model(tmp_path, final_only=False)
    with h5py.File(data[1]) as f:
        x, y = f["inputs"][:], f["masks"][:][..., None].astype(np.float32)
    outs = full.predict(x, batch_size=len(x), verbose=0)
    want = np.mean([float(get_loss(loss)(y, o)) for o in outs])
    got = T.read_history(tmp_path / "history.csv")[-1]["val_loss"]
    assert got == pytest.approx(want, rel=1e-4)
    assert float(get_loss(loss)(y, outs[-1])) != pytest.approx(want, rel=1e-3)


def test_cosine_schedule_sets_every_epoch_rate_and_resumes_on_it(data, tmp_path):
    """With lr_schedule cosine the rate of each epoch is the schedule's (ReduceLROnPlateau
    off), from the base rate down to lr_min_fraction of it, also across a resume."""
    from skydetect import schedule

    params = {**TRAIN, "epochs": 4, "lr_schedule": "cosine", "lr_min_fraction": 0.1,
              "lr_patience": 1, "lr_factor": 0.01}  # fmt: skip
    out = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):
        T.train(*data, out, MODEL, params, seed=5, extra_callbacks=[Interrupt(after=2)])
    T.train(*data, out, MODEL, params, seed=5)
    got = [r["lr"] for r in T.read_history(out / "history.csv")]
    lr = TRAIN["learning_rate"]
    want = [schedule.epoch_learning_rate(lr, "cosine", e, 4, 0.1) for e in range(4)]
    assert got == pytest.approx(want, rel=1e-5)
    assert got[0] == pytest.approx(lr) and got[-1] == pytest.approx(0.1 * lr)
    with pytest.raises(ValueError, match="clusters.train.lr_schedule"):
        T.train_params({"lr_schedule": "step"})


def test_bad_inputs(data, tmp_path):
    other = make_dataset(tmp_path / "v.h5", 8, bands=("100", "143", "217"))
    with pytest.raises(ValueError, match="v.h5: size/bands"):
        T.train(data[0], other, tmp_path / "m", MODEL, TRAIN)
    with pytest.raises(ValueError, match="optimizer"):
        T.train_params({"optimizer": "rmsprop"})
    with pytest.raises(ValueError, match="unknown training parameter"):
        T.train_params({"epoch": 3})
    with pytest.raises(ValueError, match="unknown loss"):
        T.train_params({"loss": "iou"})


def test_learning_curve_figure(reference_run, tmp_path):
    png = plot_learning_curve(reference_run[0] / "history.csv", tmp_path / "lc.png", title="t")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="empty training history"):
        plot_learning_curve(empty, tmp_path / "x.png")


@pytest.mark.slow
def test_process_killed_with_sigkill_resumes(data, tmp_path):
    """A real kill -9 of a training process after its first checkpoint, then a restart."""
    out = tmp_path / "run"
    params = {**TRAIN, "epochs": 40}
    code = (
        "import sys, json; from skydetect.clusters.train import train; "
        f"train({str(data[0])!r}, {str(data[1])!r}, {str(out)!r}, {MODEL!r}, {params!r}, seed=11)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    )
    state = out / "checkpoint" / "state.json"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if state.is_file() and json.loads(state.read_text())["epoch"] >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "training ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    done = json.loads(state.read_text())["epoch"]
    summary = T.train(*data, out, MODEL, {**params, "epochs": done + 1}, seed=11)
    assert summary["resumed"] and summary["initial_epoch"] == done
    epochs = [r["epoch"] for r in T.read_history(out / "history.csv")]
    assert epochs == list(range(done + 1))
    assert Path(out / "weights.h5").is_file()


def test_schema_defaults_are_the_reference_and_the_shipped_config_trains():
    from skydetect.config import validate_config

    root = Path(__file__).resolve().parents[1]
    cfg = validate_config({}, root / "config" / "schema.yaml")
    model, train = cfg["clusters"]["model"], cfg["clusters"]["train"]
    # the library's defaults are the validated config's (one home: the schema)
    assert model == M.model_params()
    assert {k: train[k] for k in T.DEFAULT_TRAIN if k != "run"} == {
        k: v for k, v in T.train_params().items() if k != "run"
    }
    # the schema holds the mapping of runs; the library trains one run, named by `run`
    assert set(train["runs"]) == {"unet_hfi", "unet_hfi_y"}
    # the reference: epochs 30, batch 20, lr 1e-2, patience 12, sgd with momentum 0.9
    assert (train["epochs"], train["batch_size"], train["learning_rate"]) == (30, 20, 0.01)
    assert (train["patience"], train["optimizer"], train["momentum"]) == (12, "sgd", 0.9)
    lp = train["loss_params"]
    assert lp["tversky_loss"]["delta"] == 0.3 and lp["focal_tversky_loss"]["gamma"] == 0.75
    assert lp["combo_loss"] == {"alpha": 0.5, "beta": 0.5}
    assert (lp["mixed_focal_loss"]["delta"], lp["mixed_focal_loss"]["gamma"]) == (0.7, 0.75)
    # and the shipped config trains with keys the library accepts
    shipped = validate_config(
        __import__("yaml").safe_load((root / "config" / "config.yaml").read_text()),
        root / "config" / "schema.yaml",
    )
    # what rules/common.smk passes per run: no runs mapping, no scheduling keys (threads) nor the seed
    shipped_train = {
        k: v
        for k, v in shipped["clusters"]["train"].items()
        if k not in ("runs", "threads", "seed")
    }
    for run in shipped["clusters"]["train"]["runs"]:
        T.train_params({**shipped_train, "run": run})
    with pytest.raises(ValueError, match="runs"):  # the mapping itself is not a parameter
        T.train_params(shipped["clusters"]["train"])
    M.model_params(shipped["clusters"]["model"])


@pytest.mark.slow
def test_mixed_precision_path_trains_and_resumes(data, tmp_path, monkeypatch):
    """The GPU code path (mixed float16, loss-scaled optimizer), run on the CPU."""
    real = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: ["gpu"] if kind == "GPU" else real(kind),
    )
    try:
        with pytest.raises(KeyboardInterrupt):
            T.train(*data, tmp_path, MODEL, TRAIN, seed=1, extra_callbacks=[Interrupt(after=1)])
        summary = T.train(*data, tmp_path, MODEL, TRAIN, seed=1)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert summary["resumed"] and summary["initial_epoch"] == 1
    assert json.loads((tmp_path / "model.json").read_text())["training"]["mixed_precision"]
    model = M.load_model(tmp_path)
    assert model.outputs[0].dtype == tf.float32
    assert np.all(np.isfinite(model.predict(np.zeros((1, SIZE, SIZE, 3), np.float32), verbose=0)))
