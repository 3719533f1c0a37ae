"""The workflow used as a Snakemake module from another directory.

Another group's Snakefile imports this one with ``module skydetect: snakefile: ... config:
config`` and ``use rule * from skydetect``; a dry run (``snakemake -n``) must build the whole
DAG there: every path of this workflow (config schema, rules, scripts, environments, report
captions, the library in src/) is found from the workflow itself, not from the importing
directory. Also: the input functions of rules/common.smk follow ``planck.source``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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


def dry_run(workdir, *args, timeout=600):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--directory", str(workdir)]
    res = subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=workdir
    )
    return res, res.stdout + res.stderr


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
