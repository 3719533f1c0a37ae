"""Per-tile rerun: changing one tile's input reschedules only that tile and the assembly.

A scratch run of the training-data targets under the tiny workflow config: every file of the
DAG is created as a placeholder and marked up to date in DAG order (`snakemake --touch`), so
that Snakemake sees a completed run; then `touch results/tiles/5.h5` and a dry run must list
cut_patches for tile 5 and the jobs downstream of it only. (A real run of these targets is
what tests/workflow/test_workflow.py does; here only the scheduling is under test.)
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = [
    "results/datasets/train.h5",
    "results/datasets/validation.h5",
    "results/datasets/test.h5",
]

pytestmark = pytest.mark.slow


def snakemake(wd: Path, *args) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(wd),
        "--configfile",
        str(ROOT / "tests/workflow/config.yaml"),
        "--cores",
        "1",
        "--nolock",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=wd, timeout=300)


def scheduled(out: str) -> dict:
    """rule -> count from the job-stats table of a dry run."""
    jobs = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([A-Za-z_]\w*)\s+(\d+)\s*$", line)
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    wd = tmp_path_factory.mktemp("rerun")
    summary = snakemake(wd, "--summary", *TARGETS)
    assert summary.returncode == 0, summary.stderr[-3000:]
    files = [line.split("\t")[0] for line in summary.stdout.splitlines()[1:] if "\t" in line]
    assert "results/tiles/5.h5" in files and "results/patches/train/5.h5" in files
    for f in files:
        (wd / f).parent.mkdir(parents=True, exist_ok=True)
        (wd / f).touch()
    touched = snakemake(wd, "--touch", *TARGETS)
    assert touched.returncode == 0, touched.stderr[-3000:]
    return wd


def test_completed_run_schedules_nothing(scratch):
    res = snakemake(scratch, "-n", *TARGETS)
    assert res.returncode == 0, res.stderr
    assert not scheduled(res.stdout + res.stderr), res.stdout


def test_touching_one_tile_reruns_only_its_jobs(scratch):
    (scratch / "results/tiles/5.h5").write_bytes(b"new content of tile 5")
    res = snakemake(scratch, "-n", *TARGETS)
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    jobs = scheduled(text)
    assert jobs.get("cut_patches") == 1, text
    assert "results/patches/train/5.h5" in text
    for other in (
        "results/patches/train/4.h5",
        "results/patches/cover/6.h5",
        "results/patches/validation/9.h5",
    ):
        assert f"output: {other}" not in text
    assert "split_tiles" not in jobs and "cut_cover" not in jobs and "build_catalog" not in jobs
    # downstream of a training tile: the normalisation and the assembly of the splits
    assert set(jobs) == {"cut_patches", "normalise", "assemble"}, jobs
