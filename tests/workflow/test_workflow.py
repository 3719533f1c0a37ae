"""The whole DAG on the tiny configuration, and a bad configuration stopped before any job."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from astropy.table import Table

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def test_bad_config_stops_before_any_job(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests/workflow/config.yaml").read_text())
    cfg["planck"]["nside"] = "high"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(tmp_path / "bad.yaml"), "--cores", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode != 0
    assert "planck.nside" in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_tiny_run_produces_every_final_output(tiny_run):
    """`tiny_run` (tests/conftest.py) ran `snakemake --cores 2` on tests/workflow/config.yaml."""
    res = subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tiny_run),
         "--configfile", str(ROOT / "tests/workflow/config.yaml"), "-n", "--quiet", "rules"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "Nothing to be done" in res.stdout + res.stderr or res.stdout.strip() == ""

    truth = Table.read(tiny_run / "results/sky/truth_clusters.ecsv")
    assert len(truth) > 0 and {"GLON", "GLAT", "SNR"} <= set(truth.colnames)
