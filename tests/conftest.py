"""Shared fixtures: one tiny whole-workflow run for all the slow workflow tests.

``tiny_run`` (session scope) runs ``snakemake --cores 2`` on ``tests/workflow/config.yaml`` in a
fresh temporary directory, once per pytest session, and returns that directory (it holds
``results/``, ``logs/``, ``benchmarks/rules/`` and ``snakemake.out``, the run's console
output). Tests that need a finished tiny run (tests/workflow/test_workflow.py, test_report.py,
test_reproducible.py, test_slurm.py) take it as an argument instead of running their own.
What it builds is :data:`TINY_TARGETS`. Treat the directory as read-only.

``field_files``, ``tile`` and ``truth`` (session scope) are the bubble tests' mock Spitzer field,
built once: its mosaics, the aligned field and the truth catalogue (settings and helpers of those
tests are in tests/bubble_fixtures.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "tests/workflow/config.yaml"

# What the tiny runs build (tiny_run, the SLURM run, the reproducibility rerun): an empty list
# means the default target, `rule all`, i.e. the whole DAG. While stages are missing, list
# the targets that exist (e.g. ["results/sky/truth_clusters.ecsv"]).
# SKYDETECT_TINY_TARGETS="a b" overrides it for a local check of a subset.
TINY_TARGETS: list[str] = os.environ.get("SKYDETECT_TINY_TARGETS", "").split()

TINY_TIMEOUT_S = 2400  # hard limit of one tiny run (timeout -s KILL)

# Result files compared between runs (catalogues and tables, never timestamps). Columns that
# hold wall-clock measurements (e.g. a training history's `seconds`, `images_per_s`) differ
# from run to run by nature and are skipped.
TABLE_SUFFIXES = (".ecsv", ".csv", ".fits")
TIMING_COLUMNS = re.compile(r"^(seconds|time|duration|elapsed|wall)$|(_s|_seconds|_time)$", re.I)


# Opt-in markers: tests that install system packages (apt-get) or start daemons. Plain
# `pytest` (and any -m expression that does not name the marker, e.g. `-m "not slow"`)
# leaves them out; `pytest -m slurm` runs them (.ci/run does, for each marker).
OPT_IN_MARKERS = ("slurm", "container", "chromium")


def pytest_collection_modifyitems(config, items):
    expression = config.getoption("markexpr", "") or ""
    named = {m for m in OPT_IN_MARKERS if re.search(rf"\b{m}\b", expression)}
    keep, drop = [], []
    for item in items:
        opt_in = {m for m in OPT_IN_MARKERS if item.get_closest_marker(m)}
        (drop if opt_in - named else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def snakemake_command(workdir, *args, targets=None, configfile=TINY_CONFIG) -> list[str]:
    """``snakemake -s <project>/Snakefile --directory workdir --configfile ... args targets``."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(workdir), "--configfile", str(configfile), *map(str, args)]
    return cmd + list(TINY_TARGETS if targets is None else targets)


def run_logged(cmd, log: Path, timeout_s: int = TINY_TIMEOUT_S, env=None):
    """Run ``cmd`` under ``timeout -s KILL`` (whole process group), output to ``log``.

    Returns the CompletedProcess; its ``output`` attribute holds the text written to ``log``.
    """
    with open(log, "w") as fh:
        res = subprocess.run(
            ["timeout", "-s", "KILL", str(timeout_s), *cmd],
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
    res.output = log.read_text()
    if res.returncode in (124, 137, -9):
        res.output += f"\n[killed after the hard limit of {timeout_s} s]"
    return res


TINY_DONE = ".tiny_run_finished"  # written into a tiny run's directory when it succeeded


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """Directory of one finished tiny run (``--cores 2``, tests/workflow/config.yaml).

    ``SKYDETECT_TINY_RUN=<dir>`` runs it there, and a later pytest session given the same
    directory reuses the finished run (``.ci/run`` shares one run between the plain session and
    the opt-in one); otherwise a fresh temporary directory per session.
    """
    shared = os.environ.get("SKYDETECT_TINY_RUN")
    if shared and (Path(shared) / TINY_DONE).exists():
        return Path(shared)
    workdir = Path(shared) if shared else tmp_path_factory.mktemp("tiny_run")
    workdir.mkdir(parents=True, exist_ok=True)
    res = run_logged(snakemake_command(workdir, "--cores", "2"), workdir / "snakemake.out")
    if res.returncode != 0:
        pytest.fail(f"tiny run failed (rc {res.returncode}) in {workdir}:\n{res.output[-6000:]}")
    (workdir / TINY_DONE).write_text("")
    return workdir


def result_tables(workdir: Path) -> dict[str, Path]:
    """Relative path -> file, for every catalogue/table under ``workdir/results``."""
    base = Path(workdir) / "results"
    return {
        str(p.relative_to(base)): p
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.suffix in TABLE_SUFFIXES
    }


def _array_differences(where: str, x, y) -> list[str]:
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype or x.shape != y.shape:
        return [f"{where}: {x.dtype}{x.shape} != {y.dtype}{y.shape}"]
    if x.dtype.kind in "fc":
        same = (x == y) | (np.isnan(x) & np.isnan(y))
    else:
        same = x == y
    n = int(np.size(same) - np.count_nonzero(same))
    return [f"{where}: {n} value(s) differ"] if n else []


def _table_differences(where: str, ta, tb) -> list[str]:
    if ta.colnames != tb.colnames:
        return [f"{where}: columns {ta.colnames} != {tb.colnames}"]
    if len(ta) != len(tb):
        return [f"{where}: {len(ta)} rows != {len(tb)} rows"]
    out = []
    for col in ta.colnames:
        if not TIMING_COLUMNS.search(col):
            out += _array_differences(f"{where}:{col}", ta[col], tb[col])
    return out


def _read_text_table(path: Path):
    """An ECSV file (whatever its suffix, e.g. a .csv written as ECSV) or a plain CSV."""
    from astropy.table import Table

    with open(path) as fh:
        ecsv = fh.readline().startswith("# %ECSV")
    return Table.read(path, format="ascii.ecsv" if ecsv else "ascii.csv")


def table_differences(a: Path, b: Path) -> list[str]:
    """Differences between two tables or FITS files (values, columns, dtypes, HDUs - not
    headers, which hold dates); NaN equals NaN; [] if equal."""
    from astropy.io import fits
    from astropy.table import Table

    name = a.name
    if a.suffix != ".fits":
        return _table_differences(name, _read_text_table(a), _read_text_table(b))
    out = []
    with fits.open(a) as ha, fits.open(b) as hb:
        if len(ha) != len(hb):
            return [f"{name}: {len(ha)} HDUs != {len(hb)} HDUs"]
        for i, (x, y) in enumerate(zip(ha, hb, strict=True)):
            where = f"{name}[{i}]"
            if (x.data is None) != (y.data is None):
                out.append(f"{where}: data present in one file only")
            elif isinstance(x, fits.BinTableHDU | fits.TableHDU):
                out += _table_differences(where, Table(x.data), Table(y.data))
            elif x.data is not None:
                out += _array_differences(where, x.data, y.data)
    return out


def compare_results(a: Path, b: Path) -> tuple[list[str], int]:
    """Compare the result tables of two run directories: (differences, number compared)."""
    ta, tb = result_tables(a), result_tables(b)
    diffs = []
    if set(ta) != set(tb):
        diffs.append(
            f"table sets differ: only in first {sorted(set(ta) - set(tb))}, "
            f"only in second {sorted(set(tb) - set(ta))}"
        )
    common = sorted(set(ta) & set(tb))
    for rel in common:
        diffs += [f"{rel}: {d}" for d in table_differences(ta[rel], tb[rel])]
    return diffs, len(common)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def schema_defaults(*section: str) -> dict:
    """The defaults of a config section of config/schema.yaml (nested objects filled), e.g.
    ``schema_defaults("bubbles", "simulate")``."""
    import yaml

    node = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
    for key in section:
        node = node["properties"][key]

    def fill(n):
        if n.get("type") == "object" and "properties" in n:
            return {k: fill(v) for k, v in n["properties"].items()}
        return n.get("default")

    return fill(node)


# ------------------------------------------------------------------ the bubble tests' mock field
@pytest.fixture(scope="session")
def field_files(tmp_path_factory):
    """(directory, truth): the mock GLIMPSE / MIPSGAL mosaics of field 03000+0000, the aligned
    field ``aligned.fits`` and the truth catalogue ``truth.ecsv``."""
    from bubble_fixtures import SIM

    from skydetect.bubbles import catalog as cat
    from skydetect.io import spitzer as sio
    from skydetect.sky import spitzer

    d = tmp_path_factory.mktemp("spitzer")
    i4, m1, truth = spitzer.simulate_field("03000+0000", SIM, seed=3)
    sio.write_mosaic(d / sio.glimpse_filename("03000+0000"), i4)
    sio.write_mosaic(d / sio.mipsgal_filename("03000+0000"), m1)
    spitzer_field = sio.align_field(
        d / sio.glimpse_filename("03000+0000"),
        d / sio.mipsgal_filename("03000+0000"),
        "03000+0000",
    )
    sio.write_field(d / "aligned.fits", spitzer_field)
    cat.write_catalog(d / "truth.ecsv", truth)
    return d, truth


@pytest.fixture(scope="session")
def spitzer_field(field_files):
    from skydetect.io import spitzer as sio

    return sio.read_field(field_files[0] / "aligned.fits")


@pytest.fixture(scope="session")
def truth(field_files):
    from skydetect.bubbles import catalog as cat

    return cat.read_catalog(field_files[0] / "truth.ecsv")
