"""The project's own quality gates: snakemake --lint, snakefmt and ruff all pass."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name):
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


def run(cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_snakemake_lint():
    res = run([tool("snakemake"), "--lint"])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Lints for rule" not in out, out


def test_snakefmt():
    res = run([tool("snakefmt"), "--check", "."])
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff():
    res = run([tool("ruff"), "check", "."])
    assert res.returncode == 0, res.stdout + res.stderr
