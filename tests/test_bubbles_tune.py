"""skydetect.bubbles.tune: concurrent workers on one journal, study names."""

import json

import pytest

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
    a.write_bytes(b"field one")
    b.write_bytes(b"field two")
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
    b.write_bytes(b"field 2 regenerated")
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
