"""Checkpoint files of a cluster U-Net training run, and Keras callbacks that survive a restart.

``checkpoint/`` of a model directory holds the ``tf.train.CheckpointManager`` checkpoints, the
history appended by ``CSVLogger`` (:data:`HISTORY`), the callbacks' counters (:data:`STATE`,
written last after each epoch: it names the checkpoint that is complete) and the best epoch's
weights (:data:`BEST`). Used by :mod:`skydetect.clusters.train`.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

from skydetect.io.atomic import atomic_path

log = logging.getLogger("skydetect.clusters.train")  # the training run's log lines

CHECKPOINT_DIR = "checkpoint"
HISTORY = "history.csv"
STATE = "state.json"
BEST = "best_weights.npz"


def _atomic_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows of a CSV history (``epoch`` as int, the rest float)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in r.items()} for r in rows]


def truncate_history(path: Path, first_epoch: int) -> None:
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


def resumable_callbacks(tf):
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


def load_best(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]
