"""benchmarks/workflow.py on a finished run directory: per-rule table and critical path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from test_perf import fake_log

ROOT = Path(__file__).resolve().parents[1]


def _workflow_benchmark():
    spec = importlib.util.spec_from_file_location("workflow_bench", ROOT / "benchmarks/workflow.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_dir(tmp_path: Path, log: str | None) -> Path:
    run = tmp_path / "run"
    bench = run / "benchmarks/rules/train"
    bench.mkdir(parents=True)
    (bench / "all.tsv").write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        "20.0\t0:00:20\t900\t0\t0\t0\t0\t0\t100\t19.5\n"
    )
    if log is not None:
        (run / ".snakemake/log").mkdir(parents=True)
        (run / ".snakemake/log/2026-12-07T030000.000000.snakemake.log").write_text(log)
    return run


def test_summarise_writes_the_critical_path_of_the_run(tmp_path):
    wf = _workflow_benchmark()
    out = tmp_path / "workflow.md"
    assert wf.main(["--summarise", str(_run_dir(tmp_path, fake_log())), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| train | 1 | 20.0 | 100% |" in text  # the benchmark files' table
    assert "## Critical path (existing run)" in text
    assert "| predict (tile=6) | 30 | 40 | 10 | 25% |" in text
    assert "unlimited cores): 30 s" in text
    assert "instruction set: as the environment set it" in text


def test_a_run_without_a_log_says_so_and_isa_is_checked(tmp_path):
    wf = _workflow_benchmark()
    out = tmp_path / "workflow.md"
    wf.main(["--summarise", str(_run_dir(tmp_path, None)), "--out", str(out)])
    assert "Not available: " in out.read_text() and "no .snakemake/log" in out.read_text()
    with pytest.raises(SystemExit):
        wf.main(["--summarise", str(tmp_path), "--isa", "avx512", "--out", str(out)])


def test_isa_avx2_reaches_snakemake_and_so_every_job(tmp_path, monkeypatch):
    wf = _workflow_benchmark()
    seen = {}

    def fake_run(cmd, **kw):
        seen.update(cmd=cmd, env=kw.get("env"))
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(wf.subprocess, "run", fake_run)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    wall, rc = wf.run_workflow(tmp_path / "w", ROOT / "config/config.yaml", 2, [], 10, isa="avx2")
    assert rc == 0 and "snakemake" in seen["cmd"]
    assert seen["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert seen["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    wf.run_workflow(tmp_path / "w", ROOT / "config/config.yaml", 2, [], 10)
    assert seen["env"] is None  # no --isa: the environment as it is
