"""The resumable state of a bubble SSD training run in ``checkpoint/``.

``state.json`` (history, early-stopping counters, the latest TensorFlow checkpoint, the key
a run is resumed under) is written after every epoch's checkpoint; ``best_weights.h5`` holds
the best validated epoch. Used by :mod:`skydetect.bubbles.train`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from astropy.table import Table

from skydetect.io.atomic import atomic_path

from .train_settings import TrainSettings

log = logging.getLogger("skydetect.bubbles.train")  # the training run's log lines


def _write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


def _fresh_state(key) -> dict:
    return {
        "epoch": 0,
        "best_f2": -1.0,
        "best_threshold": None,
        "best_epoch": None,
        "wait": 0,
        "history": [],
        "checkpoint": None,
        "key": key,
    }


def resume_or_reset(ckpt, ckpt_dir: Path, key, settings: TrainSettings) -> dict:
    """The saved state of an unfinished run of the same ``key`` (its checkpoint restored
    into ``ckpt``), else a fresh state with ``ckpt_dir`` emptied."""
    state_path = ckpt_dir / "state.json"
    state = _fresh_state(key)
    if state_path.exists():
        old = json.loads(state_path.read_text())
        # a finished run is never resumed: a forced rerun trains from scratch
        finished = old.get("epoch", 0) >= settings.epochs or old.get("wait", 0) >= settings.patience
        if old.get("key") == key and finished:
            log.warning("%s: the run there finished; a rerun trains from scratch", state_path)
            for f in ckpt_dir.iterdir():
                f.unlink()
        elif old.get("key") == key:
            state = old
            ckpt.restore(state["checkpoint"]).assert_existing_objects_matched()
            log.info("resuming from %s after epoch %d", state["checkpoint"], state["epoch"])
        else:
            log.warning("%s: checkpoint of other settings or data; starting over", state_path)
            for f in ckpt_dir.iterdir():
                f.unlink()
    return state


def record_epoch(state, row, validated, every, model, best_path, epoch_var, manager, path):
    """Keep the best weights, update the early-stopping counter, checkpoint and write the
    state; returns whether the F2 improved."""
    f2, epoch = row["val_f2"], row["epoch"] - 1
    improved = validated and f2 > state["best_f2"] + 1e-12
    if improved:
        with atomic_path(best_path) as tmp:
            model.save_weights(str(tmp))
        state.update(best_f2=f2, best_threshold=row["threshold"], best_epoch=epoch + 1, wait=0)
    elif validated:
        state["wait"] += every  # epochs since the last better F2
    epoch_var.assign(epoch + 1)
    state["checkpoint"] = manager.save(checkpoint_number=epoch + 1)
    state["epoch"] = epoch + 1
    state["history"].append(row)
    _write_json(path, state)
    return improved


def write_history(rows: list[dict], path: str | Path) -> None:
    """History rows as CSV (atomic)."""
    with atomic_path(path) as tmp:
        if rows:
            Table(rows=[list(r.values()) for r in rows], names=list(rows[0])).write(
                tmp, format="ascii.csv", overwrite=True
            )
        else:
            tmp.write_text("epoch\n")
