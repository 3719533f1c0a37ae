"""The conda environments of envs/ pin exactly the packages and versions of pyproject.toml.

The environments hold no project install (no ``-e ..``: Snakemake builds them from a copy
of the file, so a relative path breaks, e.g. when the workflow is used as a module); every
script puts the workflow's own src/ first on sys.path instead.
"""

from __future__ import annotations

import pytest
import tomllib
import yaml
from conftest import ROOT
from packaging.requirements import Requirement

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CORE = PROJECT["dependencies"]
ML = PROJECT["optional-dependencies"]["ml"]


def pins(requirements) -> dict[str, tuple[str, frozenset]]:
    """name -> (version specifier, extras), for requirement strings."""
    out = {}
    for text in requirements:
        req = Requirement(text)
        assert str(req.specifier).startswith("=="), f"{text!r} is not pinned to one version"
        out[req.name.lower()] = (str(req.specifier), frozenset(req.extras))
    return out


def env_pins(name: str) -> dict[str, tuple[str, frozenset]]:
    env = yaml.safe_load((ROOT / "envs" / name).read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip) == 1 and set(pip[0]) == {"pip"}, f"envs/{name}: one pip: list expected"
    for line in pip[0]["pip"]:
        assert not line.startswith("-") and ".." not in line, f"envs/{name}: {line!r}"
    return pins(pip[0]["pip"])


def test_sky_env_pins_the_core_dependencies():
    assert env_pins("sky.yaml") == pins(CORE)


def test_ml_env_pins_the_core_and_ml_dependencies():
    assert env_pins("ml.yaml") == pins(CORE + ML)


def test_gpu_env_is_the_ml_env_with_cuda_tensorflow():
    gpu, ml = env_pins("gpu.yaml"), pins(CORE + ML)
    assert gpu["tensorflow"] == (ml["tensorflow"][0], frozenset({"and-cuda"}))
    del gpu["tensorflow"], ml["tensorflow"]
    assert gpu == ml


@pytest.mark.parametrize("name", ["sky.yaml", "ml.yaml", "gpu.yaml"])
def test_env_python_matches_the_project(name):
    env = yaml.safe_load((ROOT / "envs" / name).read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    assert len(python) == 1
    version = python[0].split("=", 1)[1]
    assert Requirement(f"python{PROJECT['requires-python']}").specifier.contains(version)


def test_every_rule_env_exists():
    common = (ROOT / "rules/common.smk").read_text()
    for name in ("sky.yaml", "ml.yaml", "gpu.yaml"):
        assert f'"../envs/{name}"' in common
        assert (ROOT / "envs" / name).is_file()
