"""Bayesian hyper-parameter search for the bubble SSD with optuna.

The objective is the validation F2 of :func:`skydetect.bubbles.train.train_ssd` (the same
score, matching rule and threshold choice as training's early stopping; the reference's sweep
optimised F1 instead, a defect avoided here). Searched: learning rate and weight decay
(log-uniform), batch composition (bubble crops per batch, and negatives per bubble crop).

The study lives in an optuna journal file (``JournalStorage`` + ``JournalFileBackend`` with an
open()-based lock, safe on network file systems), so several SLURM jobs (``{worker}``) can add
trials to one study at the same time; each worker's TPE sampler is seeded with
``(seed, worker)``. The study's name carries a digest of the settings and of the input data
(:func:`study_name`): after any change of either, the workers start a new study in the same
journal instead of resuming trials scored on other data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from skydetect.io.atomic import atomic_path

log = logging.getLogger(__name__)

DEFAULT_SPACE = {
    "learning_rate": [1e-5, 1e-2],
    "weight_decay": [1e-5, 1e-1],
    "batch_bubbles": [8, 16, 32],
    "negative_ratio": [0.25, 2.0],
}


def data_digest(paths, chunk: int = 1 << 22) -> str:
    """SHA-256 (hex) of the contents of ``paths`` (in sorted order, each with its file name)."""
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        h.update(Path(p).name.encode() + b"\0")
        with open(p, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def study_name(prefix: str, settings: dict, data: str) -> str:
    """``{prefix}-{digest}``: the digest (12 hex) of the JSON of ``settings`` and ``data``."""
    blob = json.dumps({"settings": settings, "data": data}, sort_keys=True, default=str)
    return f"{prefix}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


# keys that do not change what a trial measures (job sizes, how many trials run)
_NOT_IN_KEY = {"workers", "trials_per_worker", "threads", "mem_mb", "runtime", "run", "enabled"}


def settings_key(sections: dict) -> dict:
    """``sections`` (config sections and values) without the keys in ``_NOT_IN_KEY``."""
    return {
        k: {kk: vv for kk, vv in v.items() if kk not in _NOT_IN_KEY} if isinstance(v, dict) else v
        for k, v in sections.items()
    }


def study_of_workers(records) -> str:
    """The study name shared by the worker records (``worker_*.json`` dicts); an error names
    the disagreeing names (workers run on other settings or data)."""
    names = sorted({r["study"] for r in records})
    if len(names) != 1:
        raise ValueError(
            f"tuning workers ran on different studies ({', '.join(names)}): "
            "rerun them on the same settings and data"
        )
    return names[0]


def suggest(trial, space: dict | None = None) -> dict:
    """Training-setting overrides proposed by ``trial`` within ``space``."""
    sp = {**DEFAULT_SPACE, **(space or {})}
    lr = trial.suggest_float("learning_rate", *sp["learning_rate"], log=True)
    wd = trial.suggest_float("weight_decay", *sp["weight_decay"], log=True)
    bb = trial.suggest_categorical("batch_bubbles", list(sp["batch_bubbles"]))
    ratio = trial.suggest_float("negative_ratio", *sp["negative_ratio"])
    return {
        "learning_rate": lr,
        "weight_decay": wd,
        "batch_bubbles": int(bb),
        "batch_negatives": int(round(ratio * bb)),
    }


def open_study(
    storage_path: str | Path, study_name: str, seed: int, worker: int = 0, n_startup_trials: int = 4
):
    """Create or load the study in a journal file, with a TPE sampler seeded per worker."""
    # lazy: optuna is not in the sky env, whose drivers import this module
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(storage_path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    sampler_seed = int(np.random.SeedSequence([seed, 8, worker]).generate_state(1)[0])
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=n_startup_trials)
    return optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=sampler,
        direction="maximize",
        load_if_exists=True,
    )


def run_worker(
    storage_path: str | Path,
    study_name: str,
    objective: Callable[[dict, int], float],
    n_trials: int,
    seed: int,
    worker: int = 0,
    space: dict | None = None,
    n_startup_trials: int = 4,
) -> list[dict]:
    """Run ``n_trials`` trials of ``objective(overrides, trial_number) -> F2`` in this worker.

    Returns this worker's trials as dicts (number, value, params, overrides).
    """
    import optuna  # lazy: not in the sky env, whose drivers import this module

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(storage_path, study_name, seed, worker, n_startup_trials)
    done = []

    def _objective(trial):
        overrides = suggest(trial, space)
        value = float(objective(overrides, trial.number))
        done.append(
            {"number": trial.number, "value": value, "params": trial.params, "overrides": overrides}
        )
        log.info("trial %d: F2 %.4f with %s", trial.number, value, overrides)
        return value

    study.optimize(_objective, n_trials=n_trials, catch=())
    return done


def best_params(storage_path: str | Path, study_name: str) -> dict:
    """The best finished trial of the study: its training overrides, F2 and trial counts."""
    # lazy: optuna is not in the sky env, whose drivers import this module
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(storage_path)
    if not Path(path).exists():
        raise FileNotFoundError(f"optuna journal not found: {path}")
    storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    study = optuna.load_study(study_name=study_name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ValueError(f"{path}: study {study_name!r} has no finished trial")
    best = max(complete, key=lambda t: (t.value, -t.number))
    bb = int(best.params["batch_bubbles"])
    return {
        "overrides": {
            "learning_rate": best.params["learning_rate"],
            "weight_decay": best.params["weight_decay"],
            "batch_bubbles": bb,
            "batch_negatives": int(round(best.params["negative_ratio"] * bb)),
        },
        "params": best.params,
        "value": best.value,
        "trial": best.number,
        "n_complete": len(complete),
        "n_trials": len(study.trials),
    }


def write_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))
