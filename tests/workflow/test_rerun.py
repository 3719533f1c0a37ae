"""Per-tile rerun: changing one tile's input reschedules only that tile and the assembly.

A scratch run of the training-data stages on fake checked maps (nside 128) and a fake PSZ2
catalogue, under the tiny workflow config; then `touch results/tiles/5.h5` and a dry run must
list cut_patches for tile 5 and the jobs downstream of it only.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import healpy as hp
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BANDS = ["100", "143", "217", "353", "545", "857", "y"]
TARGETS = [
    "results/datasets/train.h5",
    "results/datasets/validation.h5",
    "results/datasets/test.h5",
]

pytestmark = pytest.mark.slow


def make_fake_inputs(wd: Path, nside: int = 128, n_clusters: int = 300, seed: int = 0):
    """Checked maps (healpy RING float32) and a PSZ2-layout catalogue in ``wd``."""
    from skydetect.io.catalogs import write_psz2

    rng = np.random.default_rng(seed)
    (wd / "results/sky/checked").mkdir(parents=True, exist_ok=True)
    for i, band in enumerate(BANDS):
        m = rng.normal(0, 1 + i, hp.nside2npix(nside)).astype(np.float32)
        hp.write_map(wd / f"results/sky/checked/{band}.fits", m, dtype=np.float32,
                     overwrite=True)
    glon = rng.uniform(0, 360, n_clusters)
    glat = np.degrees(np.arcsin(rng.uniform(-1, 1, n_clusters)))
    z = np.where(rng.random(n_clusters) < 0.7, rng.uniform(0.05, 0.8, n_clusters), -1.0)
    write_psz2(
        wd / "results/sky/catalogs/psz2_union.fits",
        {
            "NAME": [f"PSZ2 FAKE{i:04d}" for i in range(n_clusters)],
            "GLON": glon,
            "GLAT": glat,
            "REDSHIFT": z,
            "MSZ": rng.uniform(2, 8, n_clusters),
            "SNR": rng.uniform(4.5, 20, n_clusters),
        },
    )


def snakemake(wd: Path, *args) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
        str(wd), "--configfile", str(ROOT / "tests/workflow/config.yaml"), "--cores", "2",
        "--nolock", *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=wd, timeout=600)


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
    make_fake_inputs(wd)
    res = snakemake(wd, *TARGETS)
    if res.returncode:
        pytest.fail(f"scratch run failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}")
    yield wd
    shutil.rmtree(wd, ignore_errors=True)


def test_scratch_run_made_the_datasets(scratch):
    import h5py

    for t in TARGETS:
        with h5py.File(scratch / t, "r") as f:
            assert f.attrs["normalised"]
            n = f["inputs"].shape[0]
            assert f["masks"].shape[0] == n
            assert n > 0


def test_touching_one_tile_reruns_only_its_jobs(scratch):
    nothing = snakemake(scratch, "-n", *TARGETS)
    assert nothing.returncode == 0, nothing.stderr
    assert not scheduled(nothing.stdout + nothing.stderr)
    (scratch / "results/tiles/5.h5").touch()
    res = snakemake(scratch, "-n", "-p", *TARGETS)
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    jobs = scheduled(text)
    assert jobs.get("cut_patches") == 1, text
    assert "results/patches/train/5.h5" in text
    assert "split_tiles" not in jobs and "cut_cover" not in jobs and "build_catalog" not in jobs
    # downstream of the training tile: normalisation and the assembly of the splits
    assert set(jobs) <= {"cut_patches", "normalise", "assemble"}, jobs
    assert jobs.get("assemble", 0) >= 1
