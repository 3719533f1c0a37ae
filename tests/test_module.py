"""The workflow used as a Snakemake module from another directory, a URL or a git host.

Another group's Snakefile imports this one with ``module skydetect: snakefile: ... config:
config`` and ``use rule * from skydetect``; a dry run (``snakemake -n``) must build the whole
DAG there: every path of this workflow (config schema, rules, scripts, environments, report
captions, the library in src/) is found from the workflow itself, not from the importing
directory. The same holds when the Snakefile is served over HTTP (127.0.0.1 here) and when
`snakedeploy deploy-workflow` deploys a release tag from a git repository (a file:// clone
here, standing in for GitHub). A module's config of `seed` alone gets the schema defaults,
which must make a working configuration. Also: the input functions of rules/common.smk
follow ``planck.source``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, TINY_CONFIG

MODULE_SNAKEFILE = """\
configfile: "config.yaml"


module skydetect:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from skydetect as skydetect_*


rule all:
    default_target: True
    input:
        rules.skydetect_all.input,
"""


def dry_run(workdir, *args, timeout=600, env=None):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--directory", str(workdir)]
    res = subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=workdir,
        env=env,
    )  # fmt: skip
    return res, res.stdout + res.stderr


def isolated_env(tmp_path, **extra):
    """The environment with Snakemake's source cache (XDG_CACHE_HOME) under ``tmp_path`` and
    no PYTHONPATH: the library must come from the workflow's own source."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "XDG_CACHE_HOME": str(tmp_path / "cache"), **extra}


@pytest.fixture
def module_dir(tmp_path):
    """A directory outside the project holding a Snakefile that imports this workflow."""
    (tmp_path / "Snakefile").write_text(MODULE_SNAKEFILE.format(snakefile=ROOT / "Snakefile"))
    (tmp_path / "config.yaml").write_text(TINY_CONFIG.read_text())
    return tmp_path


def jobs_of(output: str) -> dict[str, int]:
    """rule -> count, from the 'Job stats' table of a dry run."""
    table = output.split("Job stats:", 1)[1]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def test_workflow_dry_runs_as_a_module(module_dir):
    res, out = dry_run(module_dir)
    assert res.returncode == 0, out[-4000:]
    jobs = jobs_of(out)
    # the whole DAG, under the importing workflow's prefixed rule names
    for rule in ("simulate_planck_sky", "train_segmentation", "mmf_tile", "train_ssd"):
        assert jobs.get(f"skydetect_{rule}", 0) >= 1, jobs
    # scripts and environments resolved inside the workflow, not the importing directory
    assert str(ROOT) not in str(module_dir)
    assert "scripts/" not in {p.name for p in module_dir.iterdir()}


# Loads the importing Snakefile with the Snakemake API and prints, per rule of the module,
# the directory its relative paths are resolved from, its conda env and its script.
LIST_RULES = """
import sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(ResourceSettings(cores=1), snakefile=Path("Snakefile"), workdir=Path("."))
    wf.dag()
    for r in wf._workflow.rules:
        if r.name.startswith("skydetect_") and r.name != "skydetect_all":
            print("RULE", r.name, r.basedir.get_path_or_uri(secret_free=True), r.conda_env, r.script)
"""


def test_module_rules_use_the_workflows_scripts_and_envs(module_dir):
    res = subprocess.run(
        [sys.executable, "-c", LIST_RULES], capture_output=True, text=True, timeout=600,
        cwd=module_dir,
    )  # fmt: skip
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    rows = [line.split()[1:] for line in res.stdout.splitlines() if line.startswith("RULE ")]
    assert len(rows) > 20, res.stdout[-2000:]
    envs = set()
    for name, basedir, env, script in rows:
        env_file, script_file = (Path(basedir) / env).resolve(), (Path(basedir) / script).resolve()
        assert env_file.is_file() and env_file.parent == ROOT / "envs", (name, env_file)
        assert script_file.is_file() and script_file.parent == ROOT / "scripts", (name, script)
        envs.add(env_file.name)
    assert envs == {"sky.yaml", "ml.yaml", "gpu.yaml"}
    gpu_rules = {name for name, _, env, _ in rows if env.endswith("gpu.yaml")}
    assert gpu_rules == {"skydetect_train_segmentation", "skydetect_tune_ssd", "skydetect_train_ssd"}


class _Quiet(SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, format, *args):
        self.requested.append(self.path)


@contextlib.contextmanager
def serve(directory: Path):
    """(base URL, requested paths) of ``directory`` served over HTTP on 127.0.0.1."""
    requested: list[str] = []
    handler = type("Handler", (_Quiet,), {"requested": requested})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=directory))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requested
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def served_checkout():
    """(base URL, requested paths) of this checkout served over HTTP on 127.0.0.1."""
    with serve(ROOT) as served:
        yield served


# A module user's config: the schema defaults with only the seed set, and a few keys (a
# smaller sky, the cluster detector alone).
USER_CONFIGS = {
    "seed_only": {"seed": 7},
    "few_keys": {"seed": 3, "detectors": ["clusters"], "planck": {"nside": 256}},
}


@pytest.mark.parametrize("name", sorted(USER_CONFIGS))
def test_workflow_dry_runs_as_a_module_from_a_url(tmp_path, served_checkout, name):
    base, requested = served_checkout
    (tmp_path / "Snakefile").write_text(MODULE_SNAKEFILE.format(snakefile=f"{base}/Snakefile"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(USER_CONFIGS[name]))
    res, out = dry_run(tmp_path, env=isolated_env(tmp_path))
    assert res.returncode == 0, out[-4000:]
    jobs = jobs_of(out)
    assert jobs.get("skydetect_simulate_planck_sky") == 1, jobs
    assert jobs.get("skydetect_train_segmentation") == 2, jobs  # the schema's two U-Net runs
    assert ("skydetect_train_ssd" in jobs) == (name == "seed_only"), jobs
    # the rules, the schema and the library came over HTTP, from the served checkout
    fetched = set(requested)
    assert {"/Snakefile", "/rules/common.smk", "/config/schema.yaml"} <= fetched, fetched
    library = (ROOT / "src/skydetect.files").read_text().split()
    assert {f"/src/{f}" for f in library} <= fetched


def test_library_list_names_every_file_of_the_package():
    """src/skydetect.files lists what a remote workflow fetches of its library: regenerate it
    with `(cd src && git ls-files skydetect | sort > skydetect.files)`."""
    listed = (ROOT / "src/skydetect.files").read_text().split()
    package = ROOT / "src/skydetect"
    present = sorted(
        str(p.relative_to(ROOT / "src"))
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert listed == present


def _copy_checkout(dest: Path) -> Path:
    """This checkout's files (tracked and new, not ignored) copied to ``dest``."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if files.returncode != 0:
        pytest.skip(f"not a git checkout: {files.stderr.strip()}")
    for rel in filter(None, files.stdout.split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


def test_job_of_a_module_from_a_url_runs_the_served_library(tmp_path):
    """A real job (rule bubble_catalog) of the workflow loaded over HTTP: its script imports
    the library fetched from the served source (PYTHONPATH), not an installed copy. The
    served copy's library is marked so that its log line tells it apart."""
    served = _copy_checkout(tmp_path / "served")
    catalog = served / "src/skydetect/bubbles/catalog.py"
    text = catalog.read_text()
    assert "clear bubble names match no row of %s" in text
    catalog.write_text(text.replace("match no row of %s", "match no row of %s [served copy]"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "mwp.csv").write_text(
        ",GLON,GLAT,MajAxis,MinAxis,Reff,theta,Ecc\n2G0100000+0000000,10,0,0.5,0.4,0.45,10,0.5\n"
    )
    np.save(work / "clear.npy", np.array(["2G0100000+0000000", "2G0990000+0000000"]))
    config = {
        "detectors": ["bubbles"],
        "bubbles": {"source": "local", "local": {"catalog": str(work / "mwp.csv"),
                                                 "clear_names": str(work / "clear.npy")}},
    }  # fmt: skip
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    with serve(served) as (base, requested):
        (work / "Snakefile").write_text(MODULE_SNAKEFILE.format(snakefile=f"{base}/Snakefile"))
        res = subprocess.run(
            [sys.executable, "-m", "snakemake", "results/bubbles/catalog.ecsv", "--cores", "1"],
            cwd=work, capture_output=True, text=True, timeout=600, env=isolated_env(tmp_path),
        )  # fmt: skip
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    log = (work / "logs/bubble_catalog/all.log").read_text()
    assert "1 of 2 clear bubble names match no row of" in log
    assert "[served copy]: 2G0990000+0000000" in log, log
    assert "/scripts/bubble_catalog.py" in requested


def _release_clone(tmp_path: Path, tag: str) -> Path:
    """A git repository of this checkout's files (tracked and new), committed and tagged,
    at a path ending in github.com/<owner>/<name> as a clone of the published one would."""
    repo = _copy_checkout(tmp_path / "remote" / "github.com" / "skydetect" / "skydetect")
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "-C", str(repo)]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "release"],
                 ["tag", tag]):  # fmt: skip
        subprocess.run([*git, *args], check=True, capture_output=True)
    return repo


def test_snakedeploy_deployment_of_a_release_dry_runs(tmp_path):
    snakedeploy = shutil.which("snakedeploy", path=str(Path(sys.executable).parent))
    if snakedeploy is None:
        pytest.skip("snakedeploy is not installed (pip install -e '.[test]')")
    repo = _release_clone(tmp_path, "v0.3.0")
    # GitHub stands for the local clone: git fetches https://github.com/skydetect/skydetect
    # (snakedeploy's github() module, cloned by Snakemake) from the file:// URL instead
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(
        f'[url "{repo.as_uri()}"]\n\tinsteadOf = https://github.com/skydetect/skydetect\n'
    )
    env = isolated_env(tmp_path, GIT_CONFIG_GLOBAL=str(gitconfig), GIT_TERMINAL_PROMPT="0")
    dest = tmp_path / "deployed"
    res = subprocess.run(
        [snakedeploy, "deploy-workflow", repo.as_uri(), str(dest), "--tag", "v0.3.0"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    snakefile = (dest / "workflow/Snakefile").read_text()
    assert 'github("skydetect/skydetect", path="Snakefile", tag="v0.3.0")' in snakefile
    assert (dest / "config/config.yaml").read_text() == (ROOT / "config/config.yaml").read_text()
    res, out = dry_run(dest, env=env)
    assert res.returncode == 0, out[-4000:]
    jobs = jobs_of(out)
    for rule in ("simulate_planck_sky", "train_segmentation", "mmf_tile", "train_ssd"):
        assert jobs.get(rule, 0) >= 1, jobs  # snakedeploy's `use rule *` keeps the names
    # the workflow came from the tag, through Snakemake's git cache
    cached = tmp_path / "cache/snakemake/snakemake/source-cache"
    assert list(cached.rglob("v0.3.0/src/skydetect/config.py")), sorted(cached.rglob("*"))[:20]


def _config(tmp_path, **planck):
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    cfg["planck"].update(planck)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_check_map_reads_the_map_of_the_configured_source(tmp_path):
    snakefile, target = ROOT / "Snakefile", "results/sky/checked/353.fits"
    pr3 = "HFI_SkyMap_353-psb-field-IQU_2048_R3.00_full.fits"
    res, out = dry_run(tmp_path, "-s", snakefile, target, "--configfile", _config(tmp_path))
    assert res.returncode == 0, out[-3000:]
    assert f"results/sky/maps/{pr3}" in out and "rule download_file" not in out
    entry = {"url": f"https://example.org/{pr3}", "size": 10, "sha256": "0" * 64}
    download = _config(tmp_path, source="download", download={"353": entry})
    res, out = dry_run(tmp_path, "-s", snakefile, target, "--configfile", download)
    assert res.returncode == 0, out[-3000:]
    assert f"results/download/{pr3}" in out and "rule download_file" in out


def test_crossmatch_reads_every_configured_source_catalogue(tmp_path):
    """planck.local.catalogs.sources may list several IR/radio catalogues (any format)."""
    from astropy.io import fits

    local = {"catalogs": {}}
    for band in ("100", "143", "217", "353", "545", "857", "y"):
        local[band] = str(tmp_path / f"map_{band}.fits")
    for name in ("psz2", "mcxc", "redmapper"):
        local["catalogs"][name] = str(tmp_path / f"{name}.fits")
    sources = [str(tmp_path / "COM_PCCS_857_R2.01.fits"), str(tmp_path / "iraspsc.vot")]
    local["catalogs"]["sources"] = sources
    for path in [*sources, *local["catalogs"].values()]:
        if isinstance(path, str):
            Path(path).write_text("a catalogue\n")  # a dry run reads no catalogue
    for band in ("100", "143", "217", "353", "545", "857", "y"):  # maps are checked up front
        fits.PrimaryHDU().writeto(local[band])
    config = _config(tmp_path, source="local", local=local)
    target = "results/candidates/unet_hfi.fits"
    res, out = dry_run(tmp_path, "-s", ROOT / "Snakefile", target, "--configfile", config)
    assert res.returncode == 0, out[-3000:]
    job = out[out.index("rule crossmatch:") :].split("\n\n", 1)[0]
    assert all(path in job for path in sources), job


PREAMBLE = 'sys.path.insert(0, f"{snakemake.scriptdir}/../src")'


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_script_puts_the_workflows_library_first(script):
    """The conda envs hold no project install: each script must find src/ by itself, before
    its first skydetect import."""
    lines = script.read_text().splitlines()
    where = [i for i, line in enumerate(lines) if line.startswith(PREAMBLE)]
    assert where, f"{script.name}: add `import sys` and `{PREAMBLE}` at the top"
    first_import = next(
        (i for i, line in enumerate(lines) if re.match(r"\s*(from|import) skydetect", line)),
        len(lines),
    )
    assert where[0] < first_import, f"{script.name}: sys.path is set after a skydetect import"


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_script_takes_its_settings_from_params(script):
    """A script reads settings from its rule's params, never from the whole config: a value
    it computes with then reruns the job when it changes, and the rule documents it."""
    text = script.read_text()
    assert "snakemake.config" not in text, f"{script.name}: pass the value through params:"


SCHEDULING_KEYS = {"threads", "mem_mb", "runtime", "gpus"}
LIST_PARAMS = """
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(ResourceSettings(cores=1), snakefile=Path("{snakefile}"), workdir=Path("."))
    wf.dag()
    out = {{}}
    for r in wf._workflow.rules:
        out[r.name] = {{
            name: sorted(value) for name, value in r.params.items() if isinstance(value, dict)
        }}
    print("PARAMS", json.dumps(out))
"""


def test_no_scheduling_keys_in_params(tmp_path):
    """Memory, time and threads size a job (resources:, threads:), never its params: with
    rerun-triggers `params`, a changed memory request would otherwise rerun a training."""
    code = LIST_PARAMS.format(snakefile=ROOT / "Snakefile")
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("PARAMS "))
    params = json.loads(line.removeprefix("PARAMS "))
    assert {"train_ssd", "tune_ssd", "detect_bubbles"} <= set(params)
    assert "train" in params["train_ssd"] and "epochs" in params["train_ssd"]["train"]
    bad = {
        f"{rule}.{name}": sorted(SCHEDULING_KEYS & set(keys))
        for rule, p in params.items()
        for name, keys in p.items()
        if SCHEDULING_KEYS & set(keys)
    }
    assert not bad, f"scheduling keys in params: {bad}"


def test_run_wildcard_takes_only_configured_runs(tmp_path):
    """`mmf` is the matched filter's run: no U-Net rule (training, inference) may take it."""
    snakefile = ROOT / "Snakefile"
    res, out = dry_run(
        tmp_path, "-s", snakefile, "results/predictions/mmf/6.h5", "--configfile", TINY_CONFIG
    )
    assert res.returncode != 0 and "MissingRuleException" in out, out[-3000:]
    assert "train_segmentation" not in out
    res, out = dry_run(
        tmp_path, "-s", snakefile, "results/detections/mmf/6.ecsv", "--configfile", TINY_CONFIG
    )
    assert res.returncode == 0, out[-3000:]
    jobs = jobs_of(out)
    assert jobs.get("mmf_tile") == 1 and "extract_detections" not in jobs, jobs
