"""Plain `pytest` touches nothing outside the checkout.

Tests that install system packages (apt-get) or start daemons carry an opt-in marker
(slurm, container, chromium; registered in pyproject.toml). tests/conftest.py deselects them
unless the -m expression names the marker, so the README's `pytest` (and `pytest -m "not
slow"`) leaves them out; .ci/run checks each marker selects a test and runs them all in one
session after the plain one.
"""

from __future__ import annotations

import re
import subprocess
import sys

import tomllib
from conftest import OPT_IN_MARKERS, ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PYTEST_INI = PYPROJECT["tool"]["pytest"]["ini_options"]
# markers that do not reach outside the checkout: the rest are opt-in
PLAIN_MARKERS = {"slow", "catalogs"}
OPT_IN = {
    line.split(":", 1)[0] for line in PYTEST_INI["markers"] if line.split(":", 1)[0] not in PLAIN_MARKERS
}
# tests known to install packages or start daemons (each must stay opt-in)
REACHES_OUTSIDE = {
    "tests/test_slurm.py::test_tiny_workflow_on_slurm",
    "tests/test_report.py::test_report_renders",
}


def collect(*args) -> tuple[set[str], str]:
    """Node ids that `pytest --collect-only` selects (with the project's default options)."""
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode in (0, 5), (res.stdout + res.stderr)[-4000:]
    ids = {line.strip() for line in res.stdout.splitlines() if "::" in line}
    return ids, res.stdout + res.stderr


def test_opt_in_markers_are_registered():
    assert set(OPT_IN_MARKERS) == OPT_IN == {"slurm", "container", "chromium"}


def test_plain_pytest_selects_no_opt_in_test():
    plain, out = collect("tests")
    assert len(plain) > 100, out[-3000:]
    unit, out = collect("tests", "-m", "not slow")  # the README's unit-test command
    assert unit and unit < plain, out[-3000:]
    opt_in, out = collect("tests", "-m", " or ".join(sorted(OPT_IN)))
    assert REACHES_OUTSIDE <= opt_in, out[-3000:]
    assert not plain & opt_in, f"plain pytest selects opt-in tests: {sorted(plain & opt_in)}"
    assert not unit & opt_in, f"-m 'not slow' selects opt-in tests: {sorted(unit & opt_in)}"
    # each marker alone selects its own tests; the profile checks stay in plain pytest
    slurm, _ = collect("tests/test_slurm.py", "-m", "slurm")
    assert slurm == {"tests/test_slurm.py::test_tiny_workflow_on_slurm"}
    assert any(i.startswith("tests/test_slurm.py::test_profile") for i in plain)


def test_ci_runs_every_opt_in_marker():
    ci = (ROOT / ".ci/run").read_text()
    checked = set(re.findall(r"^opt_in (\w+)", ci, flags=re.M))
    assert checked == OPT_IN, f".ci/run checks {sorted(checked)}, markers {sorted(OPT_IN)}"
    session = re.search(r'^pytest -m "([^"]+)"$', ci, flags=re.M)
    assert session, "one opt-in session runs every marker"
    assert set(session.group(1).split(" or ")) == OPT_IN
    plain = re.search(r"^pytest$", ci, flags=re.M)
    assert plain and plain.start() < session.start(), "the README's plain `pytest` comes first"


def test_ci_fails_when_an_opt_in_marker_selects_nothing(tmp_path):
    """pytest exits 5 when it selects nothing; the opt-in step must pass that on, not hide it."""
    ci = (ROOT / ".ci/run").read_text()
    func = re.search(r"^opt_in\(\) \{.*?^\}", ci, flags=re.M | re.S).group(0)
    fake = tmp_path / "pytest"
    fake.write_text('#!/bin/sh\ncase "$2" in none) exit 5;; fail) exit 1;; *) exit 0;; esac\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    for marker, rc in (("some", 0), ("none", 5), ("fail", 1)):
        script = f"set -euo pipefail\n{func}\nopt_in {marker}\necho reached\n"
        res = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert res.returncode == rc, (marker, res.returncode, res.stderr)
        assert ("reached" in res.stdout) == (rc == 0), (marker, res.stdout)
    res = subprocess.run(["bash", "-c", f"{func}\nopt_in none"], env=env, capture_output=True, text=True)
    assert "selected nothing" in res.stderr
