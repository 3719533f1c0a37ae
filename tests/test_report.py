"""The HTML report of a tiny run: built by `snakemake --report`, rendered by headless Chromium.

Building the report (every registered result embedded, every category present) is part of
plain `pytest`. Rendering it is opt-in (`pytest -m chromium`, run by .ci/run): Chromium
(Debian package `chromium`) is installed with apt-get when missing (as root), otherwise the
test skips with the reason. The page is rendered with its JavaScript, a screenshot is taken
(checked not to be blank) and the rendered text must show the report's sections, the
workflow description (rules/report/workflow.rst) and every registered figure.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY_CONFIG, is_root, run_logged, snakemake_command

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",  # let the report's JavaScript render
]
SECTIONS = ["Workflow", "Statistics", "About", "Results"]  # the report's navigation
TITLE = "skydetect run report"  # rules/report/workflow.rst


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if not is_root() or shutil.which("apt-get") is None:
        pytest.skip("no Chromium, and apt-get (as root) is not available to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
    ):
        res = subprocess.run(
            ["timeout", "-s", "KILL", "900", *cmd], capture_output=True, text=True, env=env
        )
        if res.returncode != 0:
            pytest.skip(f"cannot install Chromium ({' '.join(cmd)}): {res.stderr[-1000:]}")
    if path := shutil.which("chromium"):
        return path
    pytest.skip("Chromium was installed but is not on PATH")


def chromium(browser: str, profile_dir: Path, *args, timeout_s: int = 120):
    return subprocess.run(
        ["timeout", "-s", "KILL", str(timeout_s), browser, *CHROMIUM_FLAGS,
         f"--user-data-dir={profile_dir}", *args],
        capture_output=True, text=True,
    )  # fmt: skip


def visible_text(dom: str) -> str:
    body = dom[dom.find("<body") :]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


# Every output registered with report() and its category, from the parsed workflow (the
# rules name their files through the stages' path helpers, not as literals).
LIST_REPORTS = """
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.io import strip_wildcard_constraints
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(
        ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[Path("{configfile}")]),
        snakefile=Path("{snakefile}"),
        workdir=Path("."),
    )
    wf.dag()
    found = [
        [strip_wildcard_constraints(str(f)), f.flags["report"].category]
        for rule in wf._workflow.rules
        for f in rule.output
        if f.flags.get("report") and f.flags["report"].category
    ]
    print("REPORTS", json.dumps(found))
"""


def report_categories(workdir: Path, configfile: Path = TINY_CONFIG) -> set[str]:
    """Categories of the report() outputs (rules/*.smk) that the run produced."""
    code = LIST_REPORTS.format(configfile=configfile, snakefile=ROOT / "Snakefile")
    with tempfile.TemporaryDirectory() as parse_dir:  # the run directory stays untouched
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
            cwd=parse_dir,
        )  # fmt: skip
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("REPORTS "))
    found = json.loads(line.removeprefix("REPORTS "))
    assert found, "no output is registered with report()"
    return {cat for path, cat in found if any(workdir.glob(re.sub(r"\{[^}]+\}", "*", path)))}


@pytest.fixture(scope="module")
def built_report(tiny_run, tmp_path_factory):
    """(run directory, snakemake --report output) of a copy of the tiny run."""
    tmp = tmp_path_factory.mktemp("report")
    # a copy, so that the shared tiny run stays untouched (.snakemake holds the provenance)
    work = tmp / "run"
    shutil.copytree(tiny_run, work, symlinks=True)
    report = work / "results/report.html"
    res = run_logged(snakemake_command(work, "--report", report), tmp / "report.out", 600)
    assert res.returncode == 0, res.output[-4000:]
    return work, res.output


@pytest.mark.slow
def test_report_embeds_every_result(built_report):
    work, output = built_report
    report = work / "results/report.html"
    assert report.is_file() and report.stat().st_size > 10_000
    raw = report.read_text(errors="replace")
    added = re.findall(r"Adding (\S+) \(", output)
    assert added, f"no result was registered in the report:\n{output[-3000:]}"
    assert any(a.endswith(".png") for a in added), added
    for name in added:
        assert name in raw, f"{name} is not embedded in the report"
    for cat in report_categories(work):
        assert cat in raw, f"report category {cat!r} is missing"


@pytest.mark.slow
@pytest.mark.chromium
def test_report_renders(built_report, tmp_path):
    browser = find_chromium()
    work, output = built_report
    report = work / "results/report.html"
    added = re.findall(r"Adding (\S+) \(", output)
    categories = report_categories(work)

    shot = tmp_path / "report.png"
    res = chromium(browser, tmp_path / "chrome1", "--window-size=1280,1600",
                   f"--screenshot={shot}", report.as_uri())  # fmt: skip
    assert shot.is_file(), f"no screenshot: {res.stderr[-2000:]}"
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1600, 1280)
    assert float(np.std(pixels[..., :3])) > 0.05, "the screenshot is blank"

    res = chromium(browser, tmp_path / "chrome2", "--dump-dom", report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    text = visible_text(res.stdout)
    for section in SECTIONS:
        assert section.lower() in text.lower(), f"section {section!r} not rendered: {text[:1500]}"
    for cat in categories:  # the navigation lists the result categories
        assert cat in text, f"category {cat!r} not rendered: {text[:1500]}"
    assert TITLE in text, f"workflow description not rendered: {text[:1500]}"
    print(f"\nreport: {report.stat().st_size / 1e6:.1f} MB, {len(added)} result(s); "
          f"screenshot {shot}")  # fmt: skip
