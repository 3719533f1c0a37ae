"""The container image: the Dockerfile pins exactly the packages of pyproject.toml, the
Snakefile names the image of this version, and (opt-in, ``pytest -m container``) the image
builds with podman and runs the tiny configuration inside.

The opt-in test takes extra podman arguments from the environment, for hosts that need them
(docs/container.md): ``SKYDETECT_PODMAN_BUILD_ARGS`` (e.g. ``--build-arg BASE_IMAGE=...``
for a base made with debootstrap where no image registry is reachable) and
``SKYDETECT_PODMAN_RUN_ARGS`` (e.g. ``--runtime runc``); ``SKYDETECT_PODMAN`` is the podman
command itself (default ``podman``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest
import tomllib
from conftest import ROOT, TINY_CONFIG
from packaging.requirements import Requirement

import skydetect

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def pins(requirements) -> dict[str, str]:
    out = {}
    for text in requirements:
        req = Requirement(text)
        assert str(req.specifier).startswith("=="), f"{text!r} is not pinned to one version"
        out[req.name.lower()] = str(req.specifier)
    return out


def dockerfile_pins() -> dict[str, str]:
    """Every ``name==version`` the Dockerfile's ``pip install`` lines name."""
    text = (ROOT / "Dockerfile").read_text()
    found = re.findall(r"^\s+([A-Za-z0-9_.\-]+==[^\s\\]+)", text, flags=re.M)
    assert found, "no pinned package found in the Dockerfile"
    return pins(found)


def image_name() -> str:
    m = re.search(r'^containerized:\s*"docker://([^"]+)"', (ROOT / "Snakefile").read_text(), re.M)
    assert m, "the Snakefile names no containerized: docker:// image"
    return m.group(1)


def test_dockerfile_pins_exactly_the_pyproject_versions():
    expected = pins(PROJECT["dependencies"] + EXTRAS["ml"] + EXTRAS["workflow"])
    assert dockerfile_pins() == expected


def test_snakefile_names_the_image_of_this_version():
    name, _, tag = image_name().rpartition(":")
    assert tag == PROJECT["version"], f"image tag {tag} is not the project version"
    assert name.startswith("ghcr.io/")
    assert skydetect.__version__ == PROJECT["version"]


def _podman(*args, timeout=600) -> subprocess.CompletedProcess:
    cmd = [*shlex.split(os.environ.get("SKYDETECT_PODMAN", "podman")), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.container
def test_image_builds_and_runs_the_tiny_config(tmp_path, request):
    markexpr = request.config.getoption("markexpr") or ""
    if not re.search(r"(?<!not )\bcontainer\b", markexpr):
        pytest.skip("opt-in: pytest -m container")
    podman = shlex.split(os.environ.get("SKYDETECT_PODMAN", "podman"))[0]
    if shutil.which(podman) is None:
        pytest.skip(f"{podman} is not installed (apt-get install podman)")
    image = image_name()
    build_args = shlex.split(os.environ.get("SKYDETECT_PODMAN_BUILD_ARGS", ""))
    res = _podman("build", *build_args, "-t", image, ".", timeout=3600)
    assert res.returncode == 0, f"podman build failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"

    run = ["run", "--rm", *shlex.split(os.environ.get("SKYDETECT_PODMAN_RUN_ARGS", ""))]
    run += ["-v", f"{tmp_path}:/work", "-w", "/work", image]
    smk = ["snakemake", "-s", "/opt/skydetect/Snakefile", "--configfile"]
    smk += [f"/opt/skydetect/{TINY_CONFIG.relative_to(ROOT)}", "--cores", "2"]
    dry = _podman(*run, *smk, "-n")
    assert dry.returncode == 0, dry.stdout[-4000:] + dry.stderr[-4000:]
    assert "simulate_planck_sky" in dry.stdout and "This was a dry-run" in dry.stdout
    assert not (tmp_path / "results").exists()

    # one short rule for real: a mock Spitzer field, written into the mounted directory
    target = "results/bubbles/spitzer/01500+0000/truth.ecsv"
    job = _podman(*run, *smk, target, timeout=900)
    assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
    assert (tmp_path / target).stat().st_size > 0
    assert (tmp_path / "results/bubbles/spitzer/01500+0000/GLM_01500+0000_mosaic_I4.fits").exists()
