"""Training of the cluster segmentation network: seeded, resumable, streamed from HDF5.

:func:`train` builds the network (:mod:`skydetect.clusters.models`), the loss
(:mod:`skydetect.clusters.losses`) and the optimiser (``adam``, or ``sgd`` with momentum),
streams batches with :mod:`skydetect.clusters.pipeline`, and fits with

* ``ReduceLROnPlateau`` on ``val_loss`` (``lr_patience``, ``lr_factor``, ``min_lr``), or with
  ``lr_schedule`` "cosine" the per-epoch rate of :mod:`skydetect.schedule` instead,
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

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import skydetect  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from skydetect import schedule
from skydetect.io.atomic import atomic_path
from skydetect.schema import schema_defaults

from . import losses as L
from . import models as M
from . import pipeline, train_checkpoint
from .datasets import content_hash
from .pipeline import BatchSource, dataset_info, make_dataset
from .train_checkpoint import (
    BEST,
    CHECKPOINT_DIR,
    HISTORY,
    STATE,
    load_best,
    read_history,
    resumable_callbacks,
    truncate_history,
)

log = logging.getLogger(__name__)

STAGE = 4  # seed stream of this stage: np.random.default_rng([seed, STAGE, ...])

#: The training parameters of one run and their defaults (the schema's ``clusters.train``, the
#: reference training) without what the workflow keeps to itself: the mapping of runs, the
#: job's threads and the seed (an argument of :func:`train`).
DEFAULT_TRAIN: dict[str, Any] = {
    "run": "default",
    **{
        k: v
        for k, v in schema_defaults("clusters.train").items()
        if k not in ("runs", "threads", "seed")
    },
}


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
    epoch_rate(out, 0)  # validates the schedule
    return out


def epoch_rate(train_p: dict[str, Any], epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based) under ``lr_schedule``
    (:func:`skydetect.schedule.epoch_learning_rate`)."""
    return schedule.epoch_learning_rate(
        train_p["learning_rate"], train_p["lr_schedule"], epoch, train_p["epochs"],
        train_p["lr_min_fraction"], key="clusters.train.lr_schedule",
    )  # fmt: skip


def code_version() -> str:
    """The library version and a hash of the training code (this module, models, losses,
    pipeline, checkpoint callbacks): a checkpoint of other code is not resumed."""
    h = hashlib.sha256(skydetect.__version__.encode())
    sources = (__file__, M.__file__, L.__file__, pipeline.__file__, train_checkpoint.__file__)
    for source in sources:
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


def _dataset_infos(train_path: str | Path, validation_path: str | Path):
    """The two datasets' :func:`dataset_info`; their patch size and bands must agree."""
    info_t, info_v = dataset_info(train_path), dataset_info(validation_path)
    if (info_t.size, info_t.bands) != (info_v.size, info_v.bands):
        raise ValueError(
            f"{validation_path}: size/bands {info_v.size}/{info_v.bands} differ from "
            f"{train_path}: {info_t.size}/{info_t.bands}"
        )
    return info_t, info_v


def _seed_and_precision(tf, train_p: dict[str, Any], seed: int) -> tuple[bool, bool, int]:
    """Set the precision policy, op determinism (CPU) and TensorFlow's seed; returns
    (GPU present, mixed precision, seed of the batch stream)."""
    gpus = tf.config.list_physical_devices("GPU")
    mixed = bool(gpus) and bool(train_p["mixed_precision"])
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    if not gpus:
        tf.config.experimental.enable_op_determinism()
    tf_seed = int(np.random.default_rng([int(seed), STAGE, 0]).integers(2**31 - 1))
    data_seed = int(np.random.default_rng([int(seed), STAGE, 1]).integers(2**31 - 1))
    tf.keras.utils.set_random_seed(tf_seed)
    return bool(gpus), mixed, data_seed


def _compiled_network(tf, info, model_p: dict[str, Any], train_p: dict[str, Any]):
    """(base model, compiled training network, its optimiser, number of outputs): deep
    supervision's outputs are concatenated for the training network; the optimiser's slots
    are built so that a checkpoint can restore them."""
    base = M.build_model((info.size, info.size, len(info.bands)), model_p)
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
    return base, net, opt, n_out


def _restore_or_reset(tf, net, opt, ckpt_dir: Path, fp: str, epochs: int):
    """Resume from the checkpoint of the same configuration in ``ckpt_dir``, or empty it and
    start afresh; returns (epoch variable, checkpoint manager, saved state or None, resumed)."""
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
    finished = bool(state and (state.get("stopped") or int(state["epoch"]) >= epochs))
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
    return epoch_var, manager, state, resumed


def _fit_callbacks(tf, train_p, state, manager, epoch_var, ckpt_dir: Path, fp, extra) -> list:
    """ReduceLR (or the ``lr_schedule``), EarlyStopping (both set to the saved ``state``),
    CSVLogger, the epoch checkpoint, then ``extra``."""
    EarlyStop, ReduceLR, EpochCheckpoint = resumable_callbacks(tf)
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
            es.resume["weights"] = load_best(ckpt_dir / BEST)
        rl.resume = state["reduce_lr"]
    lr_callback = rl  # its counters are saved even when a schedule sets the rate instead
    if train_p["lr_schedule"] != "constant":
        lr_callback = tf.keras.callbacks.LearningRateScheduler(
            lambda epoch, _lr: epoch_rate(train_p, epoch)
        )
    return [
        lr_callback,
        es,
        tf.keras.callbacks.CSVLogger(str(ckpt_dir / HISTORY), append=True),
        EpochCheckpoint(manager, epoch_var, ckpt_dir, es, rl, fp, int(train_p["epochs"])),
        *(extra or []),
    ]


def _fit(net, train_path, validation_path, train_p, data_seed, initial_epoch, callbacks, stopped):
    """Fit from ``initial_epoch`` to the epoch limit (nothing when reached or early-stopped)."""
    epochs = int(train_p["epochs"])
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


def _model_json(model_p, train_p, info_t, info_v, n_out, normalisation, seed, mixed) -> dict:
    """The content of ``model.json`` (the best epoch is filled in by :func:`_write_outputs`)."""
    return {
        "params": model_p,
        "bands": list(info_t.bands),
        "input_size": info_t.size,
        "n_outputs": n_out,
        "normalisation": normalisation,
        "training": {
            **{k: v for k, v in train_p.items()},
            "seed": int(seed),
            "mixed_precision": mixed,
            "best_epoch": None,
            "best": {},
            "n_train": info_t.n,
            "n_validation": info_v.n,
        },
    }


def _write_outputs(model_dir: Path, base, history_path: Path, model_json: dict) -> list[dict]:
    """Write ``weights.h5``, ``history.csv`` and ``model.json`` (atomically; ``model.json``
    gets the best epoch of the history); returns the history rows."""
    with atomic_path(model_dir / M.WEIGHTS_FILE) as tmp:
        base.save_weights(str(tmp))
    history = read_history(history_path) if history_path.is_file() else []
    with atomic_path(model_dir / HISTORY) as tmp:
        shutil.copyfile(history_path, tmp)
    best_row = _best_row(history)
    model_json["training"]["best_epoch"] = best_row.get("epoch")
    model_json["training"]["best"] = {k: v for k, v in best_row.items() if k.startswith("val_")}
    M.write_model_json(model_dir, model_json)
    return history


def _best_row(history: list[dict]) -> dict:
    """The history row of the lowest ``val_loss`` (the first on ties), {} without rows."""
    return min(history, key=lambda r: r.get("val_loss", np.inf)) if history else {}


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
    info_t, info_v = _dataset_infos(train_path, validation_path)
    gpus, mixed, data_seed = _seed_and_precision(tf, train_p, seed)
    log.info(
        "training %s on %d patches (validation %d), %s, bands %s, %s",
        model_p["architecture"],
        info_t.n,
        info_v.n,
        f"{info_t.size}x{info_t.size}",
        ",".join(info_t.bands),
        "GPU, mixed precision" if mixed else ("GPU" if gpus else "CPU, deterministic"),
    )
    base, net, opt, n_out = _compiled_network(tf, info_t, model_p, train_p)

    # ---- resume from a checkpoint of the same configuration, or start afresh
    fp = fingerprint(model_p, train_p, seed, [str(train_path), str(validation_path)])
    epochs = int(train_p["epochs"])
    epoch_var, manager, state, resumed = _restore_or_reset(tf, net, opt, ckpt_dir, fp, epochs)
    initial_epoch = int(epoch_var.numpy())
    history_path = ckpt_dir / HISTORY
    truncate_history(history_path, initial_epoch)
    callbacks = _fit_callbacks(
        tf, train_p, state, manager, epoch_var, ckpt_dir, fp, extra_callbacks
    )
    stopped = bool(state and state.get("stopped"))
    _fit(net, train_path, validation_path, train_p, data_seed, initial_epoch, callbacks, stopped)
    if (ckpt_dir / BEST).is_file():  # the best epoch, also when fit() was skipped
        net.set_weights(load_best(ckpt_dir / BEST))

    # ---- outputs (atomic)
    model_json = _model_json(model_p, train_p, info_t, info_v, n_out, normalisation, seed, mixed)
    history = _write_outputs(model_dir, base, history_path, model_json)
    best_row = _best_row(history)
    return {
        "initial_epoch": initial_epoch,
        "epochs_done": len(history),
        "resumed": resumed,
        "best_epoch": best_row.get("epoch"),
        "best": {k: v for k, v in best_row.items() if k.startswith("val_")},
    }
