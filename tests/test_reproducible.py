"""Reproducibility: the tiny configuration run twice from scratch gives identical catalogues.

Every random number derives from ``config["seed"]``, so a second run in a fresh directory must
write the same tables (values, columns, dtypes; headers and timestamps are ignored).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from conftest import compare_results, run_logged, snakemake_command


def _write_pair(tmp_path, tweak=None):
    """Two run directories with the same catalogue and map, one optionally tweaked."""
    rng = np.random.default_rng([1, 2])
    dirs = []
    for i in range(2):
        d = tmp_path / f"run{i}"
        (d / "results/catalogs").mkdir(parents=True)
        t = Table(
            {
                "NAME": [f"C{k}" for k in range(5)],
                "GLON": rng.uniform(0, 360, 5) if i == 0 else dirs[0][1]["GLON"],
                "THETA500": [1.0, np.nan, 2.0, 3.0, 4.0],
            }
        )
        img = np.arange(12, dtype=np.float32).reshape(3, 4)
        if i == 1 and tweak:
            t, img = tweak(t.copy(), img.copy())
        t.write(d / "results/catalogs/psz2.ecsv")
        fits.HDUList([fits.PrimaryHDU(img), fits.BinTableHDU(t)]).writeto(d / "results/m.fits")
        dirs.append((d, t))
    return dirs[0][0], dirs[1][0]


def test_compare_results_equal(tmp_path):
    a, b = _write_pair(tmp_path)
    diffs, n = compare_results(a, b)
    assert n == 2 and diffs == []  # NaN equals NaN


@pytest.mark.parametrize(
    ("tweak", "expected"),
    [
        (lambda t, img: (t[:4], img), "5 rows != 4 rows"),
        (lambda t, img: (t, img + np.float32(1e-6) * (img == 7)), "m.fits[0]: 1 value(s) differ"),
        (lambda t, img: (Table(t, names=["NAME", "GLON", "T500"]), img), "columns"),
        (lambda t, img: (t.__setitem__("NAME", [f"D{k}" for k in range(5)]) or t, img), "NAME"),
    ],
)
def test_compare_results_finds_differences(tmp_path, tweak, expected):
    a, b = _write_pair(tmp_path, tweak)
    diffs, _ = compare_results(a, b)
    assert any(expected in d for d in diffs), diffs


def test_compare_results_missing_file(tmp_path):
    a, b = _write_pair(tmp_path)
    (b / "results/m.fits").unlink()
    diffs, n = compare_results(a, b)
    assert n == 1 and "only in first ['m.fits']" in diffs[0]


@pytest.mark.slow
def test_tiny_run_is_reproducible(tiny_run, tmp_path):
    res = run_logged(snakemake_command(tmp_path, "--cores", "2"), tmp_path / "snakemake.out")
    assert res.returncode == 0, f"second tiny run failed:\n{res.output[-6000:]}"
    diffs, n = compare_results(tiny_run, tmp_path)
    print(f"\n{n} result table(s) compared between two runs from scratch")
    assert n > 0, "the tiny run wrote no catalogue or table"
    assert not diffs, "two runs with the same seed differ:\n" + "\n".join(diffs)


def test_compare_results_reads_ecsv_csv_and_skips_timings(tmp_path):
    """A .csv written as ECSV is read as such; wall-clock columns are not compared."""
    for i, (loss, secs) in enumerate([(0.5, 1.0), (0.5, 9.0)]):
        d = tmp_path / f"run{i}/results/models"
        d.mkdir(parents=True)
        Table({"epoch": [1], "loss": [loss], "seconds": [secs]}).write(
            d / "history.csv", format="ascii.ecsv", delimiter=","
        )
    a, b = tmp_path / "run0", tmp_path / "run1"
    assert compare_results(a, b) == ([], 1)
    Table({"epoch": [1], "loss": [0.6], "seconds": [1.0]}).write(
        b / "results/models/history.csv", format="ascii.ecsv", delimiter=",", overwrite=True
    )
    diffs, _ = compare_results(a, b)
    assert diffs and "loss" in diffs[0]


# Two seeded runs on different CPUs: TensorFlow picks other math kernels on another CPU
# (instruction set, oneDNN on or off), so its sums round differently and the U-Net's weights
# drift apart from the first epoch on. The catalogue tolerance that the README states, and
# that this test measures on the tiny configuration by switching oneDNN off for a second run:
REPRO_RADIUS_ARCMIN = 2.0  # a candidate's partner lies within this distance
REPRO_MAX_UNMATCHED = 0.2  # at most this fraction of the candidates has no partner
REPRO_MAX_PROB_DIFF = 0.05  # peak probabilities of the partners differ by at most this
# Measured (tiny config, 3 epochs): weights differ by 2e-6 (earlier); 20 and 21 candidates, 19
# partnered (7 % unmatched), positions within 0.01 arcmin, peak probabilities within 4e-4.


@pytest.mark.slow
def test_unet_catalogue_with_other_cpu_kernels(tiny_run, tmp_path):
    import shutil

    from skydetect.clusters.crossmatch import catalogue_difference

    redo = ("models", "predictions", "detections", "candidates", "evaluation", "datasets/unet_hfi")
    shutil.copytree(tiny_run / "results", tmp_path / "results",
                    ignore=lambda d, names: [n for n in names if f"{d}/{n}".endswith(redo)])  # fmt: skip
    target = "results/candidates/unet_hfi.fits"
    env = {**__import__("os").environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    res = run_logged(
        snakemake_command(tmp_path, "--cores", "2", "--rerun-triggers=mtime", targets=[target]),
        tmp_path / "snakemake.out",
        env=env,
    )
    assert res.returncode == 0, res.output[-6000:]
    a = Table.read(tiny_run / target)
    b = Table.read(tmp_path / target)
    if len(a) == 0 and len(b) == 0:
        # the tiny 3-epoch U-Net can settle on an all-background output on the mock sky
        # (clusters of a few 10' pixels); then there is no catalogue to compare
        pytest.skip("the tiny U-Net found no candidate with either kernel set")
    d = catalogue_difference(a, b, REPRO_RADIUS_ARCMIN)
    print(f"\nU-Net catalogue, oneDNN on vs off: {d}")
    assert d["n_first"] > 0
    assert d["unmatched_fraction"] <= REPRO_MAX_UNMATCHED, d
    assert d["max_score_diff"] <= REPRO_MAX_PROB_DIFF, d
