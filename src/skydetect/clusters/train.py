"""Training of the cluster segmentation network: seeded, resumable, streamed from HDF5.

:func:`train` builds the network (:mod:`skydetect.clusters.models`), the loss
(:mod:`skydetect.clusters.losses`) and the optimiser (``adam``, or ``sgd`` with momentum),
streams batches with :mod:`skydetect.clusters.pipeline`, and fits with

* ``ReduceLROnPlateau`` on ``val_loss`` (``lr_patience``, ``lr_factor``, ``min_lr``),
* ``EarlyStopping`` on ``val_loss`` (``patience``), restoring the best weights,
* ``CSVLogger`` (``checkpoint/history.csv``, appended),
* a checkpoint after every epoch (``tf.train.CheckpointManager`` in ``checkpoint/``:
  weights, optimiser state incl. learning rate, epoch number) plus ``state.json`` (the
  callbacks' counters) and ``best_weights.npz``.

**Resuming**: started again in the same ``model_dir`` with the same configuration, training
continues after the last completed epoch (the history rows of later epochs, written by a run
killed before its checkpoint, are dropped so no epoch appears twice). A checkpoint written
with a different configuration, dataset content or training code (see :func:`fingerprint`)
is discarded, and so is the checkpoint of a run that finished: a forced rerun trains from
scratch. Raising only ``epochs`` extends a run that ended at its epoch limit (not one that
stopped early).

**Seeding**: every random number (weight initialisation, batch order, augmentation) derives
from ``seed``; without a GPU ``tf.config.experimental.enable_op_determinism()`` makes two runs
bitwise identical. With a GPU, training uses mixed precision (``mixed_precision``) and is not
bitwise reproducible.

Deep supervision (see :mod:`skydetect.clusters.models`): the outputs are stacked on the
channel axis and the loss is the mean of the per-output losses (equal weights); the metrics
score the final output.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import skydetect  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from skydetect.io.atomic import atomic_path

from . import losses as L
from . import models as M
from . import pipeline
from .datasets import content_hash
from .pipeline import BatchSource, dataset_info, make_dataset

log = logging.getLogger(__name__)

STAGE = 4  # seed stream of this stage: np.random.default_rng([seed, STAGE, ...])

#: Training parameters and their defaults (those of the reference; see config/schema.yaml).
DEFAULT_TRAIN: dict[str, Any] = {
    "run": "default",
    "loss": "mixed_focal_loss",
    "loss_params": {},
    "optimizer": "sgd",
    "learning_rate": 1e-2,
    "momentum": 0.9,
    "batch_size": 20,
    "epochs": 30,
    "patience": 12,
    "lr_patience": 5,
    "lr_factor": 0.5,
    "min_lr": 1e-6,
    "augment": True,
    "mixed_precision": True,
}
CHECKPOINT_DIR = "checkpoint"
HISTORY = "history.csv"
STATE = "state.json"
BEST = "best_weights.npz"


def train_params(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Complete ``params`` with :data:`DEFAULT_TRAIN` and check them."""
    out = {**DEFAULT_TRAIN, **(params or {})}
    unknown = set(out) - set(DEFAULT_TRAIN)
    if unknown:
        raise ValueError(f"unknown training parameter(s) {sorted(unknown)}")
    if out["optimizer"] not in ("adam", "sgd"):
        raise ValueError(f"training parameter 'optimizer': {out['optimizer']!r} not in adam, sgd")
    for key in ("batch_size", "epochs"):
        if int(out[key]) < 1:
            raise ValueError(f"training parameter {key!r} must be >= 1, got {out[key]}")
    L.get_loss(out["loss"], out["loss_params"].get(out["loss"], {}))  # validates name + params
    return out


def code_version() -> str:
    """The library version and a hash of the training code (this module, models, losses,
    pipeline): a checkpoint of other code is not resumed."""
    h = hashlib.sha256(skydetect.__version__.encode())
    for source in (__file__, M.__file__, L.__file__, pipeline.__file__):
        h.update(Path(source).read_bytes())
    return f"{skydetect.__version__}+{h.hexdigest()[:12]}"


def fingerprint(model_p: dict, train_p: dict, seed: int, paths: list[str]) -> str:
    """Hash of everything a checkpoint depends on: the parameters (all but ``run``/``epochs``/
    ``gpus``), the seed, :func:`code_version`, and each dataset file's whole content (its
    ``content_sha256`` attribute from the assemble step, computed here for older files)."""
    tp = {k: v for k, v in train_p.items() if k not in ("run", "epochs", "gpus")}
    h = hashlib.sha256(
        json.dumps([model_p, tp, int(seed), code_version()], sort_keys=True).encode()
    )
    for path in paths:
        info = dataset_info(path)
        h.update(repr((info.n, info.size, info.bands)).encode())
        with h5py.File(path, "r") as f:
            digest = f.attrs.get("content_sha256")
            h.update(str(digest if digest is not None else content_hash(f)).encode())
    return h.hexdigest()[:16]


def _atomic_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows of a CSV history (``epoch`` as int, the rest float)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in r.items()} for r in rows]


def _truncate_history(path: Path, first_epoch: int) -> None:
    """Keep only the rows of epochs < ``first_epoch`` (atomic rewrite)."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    head, body = rows[0], [r for r in rows[1:] if r and int(r[0]) < first_epoch]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([head, *body])


def _callbacks(tf):
    """Keras callbacks whose counters survive a restart (``get_state`` / ``set_state``)."""

    class ResumableEarlyStopping(tf.keras.callbacks.EarlyStopping):
        resume: dict | None = None

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if self.resume:
                self.wait, self.best = self.resume["wait"], self.resume["best"]
                self.best_epoch = self.resume["best_epoch"]
                self.best_weights = self.resume.get("weights")

        def get_state(self):
            return {"wait": self.wait, "best": float(self.best), "best_epoch": self.best_epoch}

    class ResumableReduceLR(tf.keras.callbacks.ReduceLROnPlateau):
        resume: dict | None = None

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if self.resume:
                self.wait, self.best = self.resume["wait"], self.resume["best"]
                self.cooldown_counter = self.resume["cooldown_counter"]

        def get_state(self):
            return {
                "wait": self.wait,
                "best": float(self.best),
                "cooldown_counter": self.cooldown_counter,
            }

    class EpochCheckpoint(tf.keras.callbacks.Callback):
        """After each epoch: tf checkpoint (weights, optimiser, epoch), best weights, state."""

        def __init__(self, manager, epoch_var, ckpt_dir, es, lr, fp, total):
            super().__init__()
            self.manager, self.epoch_var, self.dir = manager, epoch_var, Path(ckpt_dir)
            self.es, self.lr, self.fp, self.total = es, lr, fp, total
            self._best_saved = None
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if self.es.best_epoch != self._best_saved and self.es.best_weights is not None:
                with atomic_path(self.dir / BEST) as tmp:
                    np.savez(tmp, *self.es.best_weights)
                self._best_saved = self.es.best_epoch
            self.epoch_var.assign(epoch + 1)
            self.manager.save(checkpoint_number=epoch + 1)
            state = {
                "fingerprint": self.fp,
                "epoch": epoch + 1,
                "stopped": bool(self.model.stop_training),
                "early_stopping": self.es.get_state(),
                "reduce_lr": self.lr.get_state(),
            }
            _atomic_json(self.dir / STATE, state)
            shown = " ".join(f"{k}={v:.4g}" for k, v in logs.items())
            log.info(
                "epoch %d/%d (%.0f s): %s", epoch + 1, self.total, time.time() - self.t0, shown
            )
            self.t0 = time.time()

    return ResumableEarlyStopping, ResumableReduceLR, EpochCheckpoint


def _load_best(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def train(
    train_path: str | Path,
    validation_path: str | Path,
    model_dir: str | Path,
    model_p: dict[str, Any] | None = None,
    train_p: dict[str, Any] | None = None,
    seed: int = 0,
    normalisation: dict | None = None,
    extra_callbacks: list | None = None,
) -> dict[str, Any]:
    """Train (or resume training) and write ``weights.h5``, ``model.json``, ``history.csv``.

    ``normalisation`` (the content of ``normalisation.json``) is copied into ``model.json``
    so the model carries the scaling its inputs need. ``extra_callbacks`` run after the
    checkpoint callback (tests use one to interrupt a run). Returns a summary dict:
    ``initial_epoch``, ``epochs_done``, ``best_epoch`` (0-based), ``best`` (validation metrics
    of the best epoch), ``resumed``.
    """
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    model_p, train_p = M.model_params(model_p), train_params(train_p)
    model_dir = Path(model_dir)
    ckpt_dir = model_dir / CHECKPOINT_DIR
    info_t, info_v = dataset_info(train_path), dataset_info(validation_path)
    if (info_t.size, info_t.bands) != (info_v.size, info_v.bands):
        raise ValueError(
            f"{validation_path}: size/bands {info_v.size}/{info_v.bands} differ from "
            f"{train_path}: {info_t.size}/{info_t.bands}"
        )

    gpus = tf.config.list_physical_devices("GPU")
    mixed = bool(gpus) and bool(train_p["mixed_precision"])
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    if not gpus:
        tf.config.experimental.enable_op_determinism()
    tf_seed = int(np.random.default_rng([int(seed), STAGE, 0]).integers(2**31 - 1))
    data_seed = int(np.random.default_rng([int(seed), STAGE, 1]).integers(2**31 - 1))
    tf.keras.utils.set_random_seed(tf_seed)
    log.info(
        "training %s on %d patches (validation %d), %s, bands %s, %s",
        model_p["architecture"],
        info_t.n,
        info_v.n,
        f"{info_t.size}x{info_t.size}",
        ",".join(info_t.bands),
        "GPU, mixed precision" if mixed else ("GPU" if gpus else "CPU, deterministic"),
    )

    base = M.build_model((info_t.size, info_t.size, len(info_t.bands)), model_p)
    n_out = len(base.outputs)
    loss = L.get_loss(train_p["loss"], train_p["loss_params"].get(train_p["loss"], {}))
    if n_out > 1:
        net = tf.keras.Model(
            base.inputs, tf.keras.layers.Concatenate(axis=-1, dtype="float32")(base.outputs)
        )
        loss = L.deep_supervision_loss(loss, n_out)
    else:
        net = base
    lr = float(train_p["learning_rate"])
    if train_p["optimizer"] == "adam":
        opt = tf.keras.optimizers.Adam(learning_rate=lr)
    else:
        opt = tf.keras.optimizers.SGD(learning_rate=lr, momentum=float(train_p["momentum"]))
    net.compile(optimizer=opt, loss=loss, metrics=L.segmentation_metrics())
    opt = net.optimizer  # a LossScaleOptimizer under mixed precision
    getattr(opt, "inner_optimizer", opt).build(net.trainable_variables)  # slots exist: restorable

    # ---- resume from a checkpoint of the same configuration, or start afresh
    fp = fingerprint(model_p, train_p, seed, [str(train_path), str(validation_path)])
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    ckpt = tf.train.Checkpoint(model=net, optimizer=opt, epoch=epoch_var)
    state_path = ckpt_dir / STATE
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=2)
    # state.json is written last: it names the checkpoint that is complete (a later one may
    # be from a job killed before it could write its state)
    committed = ckpt_dir / f"ckpt-{state['epoch']}" if state else None
    # a run that finished (early-stopped, or at this epoch limit) is not resumed: Snakemake
    # reruns a finished job only when forced (or its code or inputs changed), and then it
    # trains from scratch; raising only ``epochs`` still extends a run that hit its limit
    finished = bool(
        state and (state.get("stopped") or int(state["epoch"]) >= int(train_p["epochs"]))
    )
    resumed = bool(
        state
        and state.get("fingerprint") == fp
        and Path(f"{committed}.index").is_file()
        and not finished
    )
    if not resumed:
        if finished and state.get("fingerprint") == fp:
            log.warning(
                "%s: the run there finished (epoch %d, early-stopped: %s); a rerun trains "
                "from scratch",
                ckpt_dir,
                int(state["epoch"]),
                bool(state.get("stopped")),
            )
            shutil.rmtree(ckpt_dir)
        if ckpt_dir.exists():
            log.warning(
                "%s: checkpoint of another configuration or incomplete: starting afresh", ckpt_dir
            )
            shutil.rmtree(ckpt_dir)
        ckpt_dir.mkdir(parents=True)
        manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=2)
        state = None
    else:
        ckpt.restore(str(committed)).assert_existing_objects_matched()
        log.info("resuming from %s (epoch %d done)", committed, int(epoch_var.numpy()))
    initial_epoch = int(epoch_var.numpy())
    history_path = ckpt_dir / HISTORY
    _truncate_history(history_path, initial_epoch)

    EarlyStop, ReduceLR, EpochCheckpoint = _callbacks(tf)
    es = EarlyStop(monitor="val_loss", patience=int(train_p["patience"]), restore_best_weights=True)
    rl = ReduceLR(
        monitor="val_loss",
        patience=int(train_p["lr_patience"]),
        factor=float(train_p["lr_factor"]),
        min_lr=float(train_p["min_lr"]),
    )
    if state:
        es.resume = dict(state["early_stopping"])
        if (ckpt_dir / BEST).is_file():
            es.resume["weights"] = _load_best(ckpt_dir / BEST)
        rl.resume = state["reduce_lr"]
    epochs = int(train_p["epochs"])
    callbacks = [
        rl,
        es,
        tf.keras.callbacks.CSVLogger(str(history_path), append=True),
        EpochCheckpoint(manager, epoch_var, ckpt_dir, es, rl, fp, epochs),
        *(extra_callbacks or []),
    ]
    stopped = bool(state and state.get("stopped"))
    if initial_epoch < epochs and not stopped:
        train_src = BatchSource(
            train_path,
            train_p["batch_size"],
            seed=data_seed,
            shuffle=True,
            augment=bool(train_p["augment"]),
            first_epoch=initial_epoch,
        )
        val_src = BatchSource(validation_path, train_p["batch_size"], shuffle=False, augment=False)
        net.fit(
            make_dataset(train_src),
            validation_data=make_dataset(val_src),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=0,
        )
    else:
        log.info(
            "nothing left to train (epoch %d of %d, early-stopped: %s)",
            initial_epoch,
            epochs,
            stopped,
        )
    if (ckpt_dir / BEST).is_file():  # the best epoch, also when fit() was skipped
        net.set_weights(_load_best(ckpt_dir / BEST))

    # ---- outputs (atomic)
    with atomic_path(model_dir / M.WEIGHTS_FILE) as tmp:
        base.save_weights(str(tmp))
    history = read_history(history_path) if history_path.is_file() else []
    with atomic_path(model_dir / HISTORY) as tmp:
        shutil.copyfile(history_path, tmp)
    best_row = min(history, key=lambda r: r.get("val_loss", np.inf)) if history else {}
    M.write_model_json(
        model_dir,
        {
            "params": model_p,
            "bands": list(info_t.bands),
            "input_size": info_t.size,
            "n_outputs": n_out,
            "normalisation": normalisation,
            "training": {
                **{k: v for k, v in train_p.items()},
                "seed": int(seed),
                "mixed_precision": mixed,
                "best_epoch": best_row.get("epoch"),
                "best": {k: v for k, v in best_row.items() if k.startswith("val_")},
                "n_train": info_t.n,
                "n_validation": info_v.n,
            },
        },
    )
    return {
        "initial_epoch": initial_epoch,
        "epochs_done": len(history),
        "resumed": resumed,
        "best_epoch": best_row.get("epoch"),
        "best": {k: v for k, v in best_row.items() if k.startswith("val_")},
    }
