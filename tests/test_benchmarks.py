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


def _seed_scatter():
    spec = importlib.util.spec_from_file_location("seed_scatter", ROOT / "benchmarks/seed_scatter.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_scorecard(path: Path, n_true: dict, purity: float) -> None:
    from astropy.table import Table

    names = list(n_true)
    t = Table({"DETECTOR": names, "N_TRUE_AT_P90": [n_true[d] for d in names],
               "PURITY_TEST": [purity] * len(names),
               "DELTA_MMF": [n_true[d] - n_true["mmf"] for d in names],
               "C_SNR45_AT_P90": [float("nan")] * len(names)})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    t.write(path, format="ascii.ecsv")


def test_seed_scatter_table_from_fake_scorecards(tmp_path):
    ss = _seed_scatter()
    runs = ss.plan_runs([1, 2, 3], [42, 7], ["native", "avx2"])
    assert len(runs) == 12 and len({r["label"] for r in runs}) == 12
    assert {r["group"] for r in runs} == {"sky42_native", "sky42_avx2", "sky7_native", "sky7_avx2"}
    # four runs: two sky-seed/ISA groups of two training seeds each
    values = {"sky42_native_train1": (100, 0.91), "sky42_native_train2": (104, 0.93),
              "sky7_native_train1": (90, 0.90), "sky7_native_train2": (90, 0.95)}  # fmt: skip
    for label, (n, p) in values.items():
        _fake_scorecard(tmp_path / label / ss.SCORECARD, {"unet_hfi": n, "mmf": 95}, p)
    assert ss.main(["--summarise", str(tmp_path), "--seeds", "1", "2", "--sky-seeds", "42", "7",
                    "--isa", "native", "--out", str(tmp_path / "scatter.md")]) == 0  # fmt: skip
    cards = ss.read_scorecards({k: tmp_path / k / ss.SCORECARD for k in values})
    rows = {(r["detector"], r["quantity"]): r for r in ss.spread(
        cards, {k: k.rsplit("_", 1)[0] for k in values})}  # fmt: skip
    r = rows[("unet_hfi", "N_TRUE_AT_P90")]
    assert (r["min"], r["max"], r["mean"]) == (90, 104, 96)
    assert r["std"] == pytest.approx(7.118, abs=1e-3)  # sample std of 100, 104, 90, 90
    assert r["std_train"] == pytest.approx(2.0)  # rms of the groups' std, 2.83 and 0
    assert rows[("mmf", "DELTA_MMF")]["max"] == 0 and rows[("mmf", "N_TRUE_AT_P90")]["std"] == 0
    assert rows[("unet_hfi", "C_SNR45_AT_P90")]["n"] == 0  # never finite: '–'
    text = (tmp_path / "scatter.md").read_text()
    assert "| unet_hfi | N_TRUE_AT_P90 | 4 (4) | 90 | 104 | 96 | 7.118 | 2 |" in text
    assert "| unet_hfi | C_SNR45_AT_P90 | 4 (0) | – | – | – | – | – |" in text
    with pytest.raises(SystemExit, match="no scorecard"):
        ss.read_scorecards({"x": tmp_path / "missing.ecsv"})
    # a summary over a plan of which some runs were never made: those are listed as not run
    assert ss.main(["--summarise", str(tmp_path), "--seeds", "1", "2", "3", "--sky-seeds", "42",
                    "7", "--isa", "native", "--out", str(tmp_path / "part.md")]) == 1  # fmt: skip
    part = (tmp_path / "part.md").read_text()
    assert "runs: 4 of 6 with a scorecard" in part
    assert "| sky7_native_train3 | 7 | native | 3 | – | not run |" in part
    assert "| sky42_native_train1 | 42 | native | 1 | – | existing |" in part


def test_seed_scatter_runs_snakemake_with_the_seeds_and_the_isa(tmp_path, monkeypatch):
    ss = _seed_scatter()
    seen = []

    def fake_run(cmd, **kw):
        seen.append((cmd, kw["env"]))
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(ss.subprocess, "run", fake_run)
    run = ss.plan_runs([3], [7], ["avx2"])[0]
    ss.run_one(run, tmp_path / "a", ROOT / "config/config.yaml", 2, 10)
    cmd, env = seen[0]
    assert cmd[cmd.index("--config") + 1 :] == ["seed=7", "detectors=[clusters]",
                                                  "clusters={train: {seed: 3}}"]  # fmt: skip
    assert ss.SCORECARD in cmd and cmd[cmd.index("--directory") + 1] == str(tmp_path / "a")
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["OPENBLAS_CORETYPE"] == "Haswell"
    (tmp_path / "a" / "marker").write_text("x")
    ss.run_one(ss.plan_runs([4], [7], ["native"])[0], tmp_path / "b",
               ROOT / "config/config.yaml", 2, 10, copy_from=tmp_path / "a")  # fmt: skip
    assert (tmp_path / "b" / "marker").exists()  # started from the first run's directory
    assert "ONEDNN_MAX_CPU_ISA" not in seen[1][1]
    with pytest.raises(SystemExit, match="repeated"):
        ss.plan_runs([1, 1], [7], ["native"])
