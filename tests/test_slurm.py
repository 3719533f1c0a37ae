"""profiles/slurm on a real SLURM cluster: the tiny workflow submitted through sbatch.

The slow test starts a single-node SLURM 22.05 cluster on 127.0.0.1 (munged, MariaDB,
slurmdbd, slurmctld, slurmd; Debian packages installed with apt-get when missing) with
tests/slurm/start_slurm.sh, runs the tiny configuration with a profile derived from
profiles/slurm (only the account/partition, the GPU requests and the sizes changed to fit a
2-CPU test node; the rules' own memory requests are capped there), checks in `sacct` that
every job went through SLURM and COMPLETED, and that the result tables equal those of the
local tiny run. It stops only the daemons it started. Needs root; skips with the reason
otherwise. It is opt-in (marker `slurm`: `pytest -m slurm`, run by .ci/run); plain `pytest`
runs only the profile checks, which install and start nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import (
    ROOT,
    TINY_TIMEOUT_S,
    compare_results,
    is_root,
    run_logged,
    snakemake_command,
)

PROFILE = ROOT / "profiles/slurm/config.yaml"
SLURM_DIR = ROOT / "tests/slurm"
SLURM_BASE = Path(os.environ.get("SLURM_BASE", "/tmp/skydetect-slurm"))
ACCOUNT, PARTITION = "ci", "debug"  # created by tests/slurm/start_slurm.sh

# Every rule of the workflow; the profile's set-resources may name only these.
# The profile carries only what depends on the cluster: account, partition, GPU options.
GPU_RULES = {"train_segmentation", "tune_ssd", "train_ssd"}
GPU_OPTIONS = {"gpu", "gpu_model", "gres", "slurm_extra"}
WORKFLOW_RULES = {
    name
    for path in [ROOT / "Snakefile", *(ROOT / "rules").glob("*.smk")]
    for name in re.findall(r"^(?:rule|checkpoint) (\w+):", path.read_text(), flags=re.M)
}


def load_profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def derive_test_profile(dest: Path, *, cpus: int = 2, mem_mb: int = 4000, rules=()) -> Path:
    """profiles/slurm adapted to the loopback test cluster (written to ``dest/config.yaml``).

    Kept: executor and the profile's structure; changed: account/partition of the test
    cluster, no GPUs, no conda, threads <= ``cpus`` (``max-threads``), memory ``mem_mb`` for
    every rule in ``rules`` (the rules' own requests, sized for real maps, exceed the test
    node), short status polling and latency, no retries.
    """
    prof = load_profile()
    prof.update(
        {
            "max-threads": cpus,
            "jobs": 4,
            "latency-wait": 5,
            "retries": 0,
            "slurm-init-seconds-before-status-checks": 2,
            "slurm-keep-successful-logs": True,
        }
    )
    prof.pop("use-conda", None)
    prof.pop("software-deployment-method", None)
    prof["default-resources"].update(
        {"slurm_account": ACCOUNT, "slurm_partition": PARTITION, "mem_mb": 1000, "runtime": 20}
    )
    prof.setdefault("set-resources", {})
    for rule in rules:
        prof["set-resources"].setdefault(rule, {})["mem_mb"] = mem_mb
    for res in prof["set-resources"].values():
        for key in ("gpu_model", "gres", "slurm_extra"):
            res.pop(key, None)
        res["gpu"] = 0  # the test node has none (overrides a rule's own `gpu=` too)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dest


# ------------------------------------------------------------------ fast checks of the profile
def test_profile_is_a_valid_slurm_profile():
    prof = load_profile()
    assert prof["executor"] == "slurm"
    assert set(prof["default-resources"]) == {"slurm_account", "slurm_partition"}
    unknown = set(prof["set-resources"]) - WORKFLOW_RULES
    assert not unknown, f"set-resources names rules the workflow does not have: {unknown}"
    # memory, time and threads are the rules' (sized from the config): never repeated here
    assert "set-threads" not in prof
    for rule, res in prof["set-resources"].items():
        assert set(res) <= GPU_OPTIONS, f"{rule}: {set(res) - GPU_OPTIONS} belong on the rule"
    assert set(prof["set-resources"]) == GPU_RULES
    assert all(prof["set-resources"][rule].get("gpu") == 1 for rule in GPU_RULES)


def _effective_args(*argv):
    from snakemake.cli import parse_args

    cwd = os.getcwd()
    os.chdir(ROOT)  # the workflow profile (profiles/default) is looked up from here
    try:
        return parse_args(list(argv))[1]
    finally:
        os.chdir(cwd)


def test_profile_parses_with_snakemake():
    args = _effective_args("--profile", str(PROFILE.parent), "--workflow-profile", "none", "-n")
    assert args.executor == "slurm"
    assert args.jobs == load_profile()["jobs"]
    assert {"slurm_account", "slurm_partition"} <= set(args.default_resources)
    assert "train_segmentation" in args.set_resources


def test_default_workflow_profile_keeps_slurm_default_resources():
    args = _effective_args("--profile", str(PROFILE.parent), "-n")
    assert "slurm_account" in args.default_resources


def test_derived_test_profile(tmp_path):
    prof = yaml.safe_load((derive_test_profile(tmp_path) / "config.yaml").read_text())
    assert prof["executor"] == "slurm" and "use-conda" not in prof
    assert prof["default-resources"]["slurm_account"] == ACCOUNT
    assert all(r["gpu"] == 0 for r in prof["set-resources"].values())
    assert prof["max-threads"] == 2 and "set-threads" not in prof
    assert set(prof["set-resources"]) == set(load_profile()["set-resources"])
    prof = yaml.safe_load(
        (derive_test_profile(tmp_path, rules=["new_rule", "train_ssd"]) / "config.yaml").read_text()
    )
    assert prof["set-resources"]["new_rule"] == {"mem_mb": 4000, "gpu": 0}
    assert prof["set-resources"]["train_ssd"] == {"gpu": 0, "mem_mb": 4000}


# ------------------------------------------------------------------ the real cluster
def _alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running loopback SLURM cluster; stopped afterwards only if this fixture started it."""
    if not is_root():
        pytest.skip("the SLURM test cluster needs root (it installs and starts daemons)")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and apt-get is not available to install it")
    was_running = _alive(SLURM_BASE / "run/slurmctld.pid")
    env = dict(os.environ, SLURM_BASE=str(SLURM_BASE), SLURM_ACCOUNTING="dbd")
    log = tmp_path_factory.mktemp("slurm") / "start_slurm.log"
    res = run_logged(["bash", str(SLURM_DIR / "start_slurm.sh")], log, timeout_s=600, env=env)
    if res.returncode != 0:
        if not was_running:
            subprocess.run(["bash", str(SLURM_DIR / "stop_slurm.sh")], env=env, timeout=120)
        pytest.skip(f"could not install/start SLURM (rc {res.returncode}):\n{res.output[-2000:]}")
    print(res.output.strip().splitlines()[-3])
    yield env
    if not was_running:
        subprocess.run(["bash", str(SLURM_DIR / "stop_slurm.sh")], env=env, timeout=120)


def _sacct_states(job_ids: list[str]) -> dict[str, str]:
    res = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(line.split("|", 1) for line in res.stdout.split() if "|" in line)


@pytest.mark.slow
@pytest.mark.slurm
def test_tiny_workflow_on_slurm(slurm_cluster, tiny_run, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    listed = subprocess.run(
        snakemake_command(workdir, "--list-rules", targets=[]),
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    rules = re.findall(r"^(\w+)$", listed.stdout, flags=re.M)
    profile = derive_test_profile(tmp_path / "profile", rules=rules)
    cmd = snakemake_command(workdir, "--profile", profile)
    res = run_logged(cmd, workdir / "snakemake.out", TINY_TIMEOUT_S, env=slurm_cluster)
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", res.output)
    if res.returncode != 0:
        if job_ids:  # a killed snakemake leaves its jobs behind
            subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60)
        pytest.fail(f"SLURM run failed in {workdir}:\n{res.output[-6000:]}")

    remote_jobs = re.findall(r"^rule (\w+):", res.output, flags=re.M)
    print(f"\n{len(job_ids)} job(s) submitted through sbatch: {sorted(set(remote_jobs))}")
    assert job_ids, "no job went through sbatch:\n" + res.output[-3000:]
    assert len(job_ids) == len(remote_jobs), "every non-local job must be a SLURM job"
    states = _sacct_states(job_ids)
    assert set(states) == set(job_ids), f"sacct does not list every job: {states}"
    assert set(states.values()) == {"COMPLETED"}, states

    diffs, n = compare_results(tiny_run, workdir)
    print(f"{n} result table(s) compared with the local tiny run")
    assert n > 0
    assert not diffs, "SLURM and local runs differ:\n" + "\n".join(diffs)
