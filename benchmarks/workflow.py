"""Wall time of a whole workflow run with 1 and 2 cores, and per-rule times.

Runs ``snakemake --cores N`` from scratch (a fresh working directory per N) on a configuration
(default: the default run, config/config.yaml), measures the wall time, and summarises the
``benchmark:`` files every rule writes (benchmarks/rules/<rule>/<wildcards>.tsv): jobs, total
/ mean / max seconds, peak memory (max RSS) and CPU time. From the Snakemake log (per job:
start, end, inputs, outputs) it finds the critical path, the chain of jobs that set the wall
time (:mod:`skydetect.runlog`), and prints it. Writes Markdown to benchmarks/results/workflow.md
(``--out``) and prints it.

``--isa avx2`` runs Snakemake, and so every job, with oneDNN and OpenBLAS limited to AVX2
(``ONEDNN_MAX_CPU_ISA=AVX2``, ``OPENBLAS_CORETYPE=Haswell``): the run of a CPU without
AVX-512, on any x86 machine. ``--isa native`` lifts such a limit inherited from the shell.

    python benchmarks/workflow.py                                # default run, 1 and 2 cores
    python benchmarks/workflow.py --cores 2 --isa avx2           # as on an AVX2-only CPU
    python benchmarks/workflow.py --configfile tests/workflow/config.yaml \\
        --out benchmarks/results/workflow_tiny.md                # the tiny configuration
    python benchmarks/workflow.py --summarise /path/to/run       # an existing run only
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's library

from skydetect import perf, runlog  # noqa: E402


def run_workflow(
    workdir: Path,
    configfile: Path,
    cores: int,
    targets,
    timeout_s: int,
    keep_going=False,
    isa: str | None = None,
) -> tuple[float, int]:
    """One run from scratch: (wall time in seconds, return code). ``isa``: Snakemake and
    its jobs with oneDNN and OpenBLAS limited to it (:func:`skydetect.perf.isa_environment`);
    None: this process's environment.

    Raises on failure unless ``keep_going`` (then independent jobs finish, and the failure is
    reported in the table)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    cmd = ["timeout", "-s", "KILL", str(timeout_s), sys.executable, "-m", "snakemake"]
    cmd += ["-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(configfile), "--cores", str(cores), *targets]
    if keep_going:
        cmd.append("--keep-going")
    print(f"[workflow benchmark] {cores} core(s): {workdir}", flush=True)
    t0 = time.perf_counter()
    env = perf.isa_environment(isa) if isa else None
    with open(workdir / "snakemake.out", "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env).returncode
    wall = time.perf_counter() - t0
    if rc != 0 and not keep_going:
        tail = (workdir / "snakemake.out").read_text()[-3000:]
        raise SystemExit(f"run with {cores} core(s) failed (rc {rc}) in {workdir}:\n{tail}")
    return wall, rc


def rule_times(workdir: Path) -> dict[str, dict[str, float]]:
    """Per rule: jobs, total/mean/max seconds, max RSS (MB), CPU seconds from benchmark files."""
    rows = defaultdict(list)
    for tsv in sorted((workdir / "benchmarks/rules").glob("*/**/*.tsv")):
        rule = tsv.relative_to(workdir / "benchmarks/rules").parts[0]
        with open(tsv, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                rows[rule].append(row)

    def num(row, key):
        try:
            return float(row.get(key) or "nan")
        except ValueError:
            return float("nan")

    out = {}
    for rule, rs in rows.items():
        secs = [num(r, "s") for r in rs]
        rss = [num(r, "max_rss") for r in rs]
        cpu = [num(r, "cpu_time") for r in rs]
        out[rule] = {
            "jobs": len(rs),
            "total_s": sum(secs),
            "mean_s": sum(secs) / len(secs),
            "max_s": max(secs),
            "max_rss_mb": max((x for x in rss if x == x), default=float("nan")),
            "cpu_s": sum(x for x in cpu if x == x),
        }
    return out


def read_previous(path: Path) -> dict[str, dict[str, float]]:
    """Per rule: jobs, mean seconds and CPU seconds of an earlier table of this script."""
    out = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[1].isdigit() and not cells[0].startswith("**"):
            out[cells[0]] = {
                "jobs": int(cells[1]),
                "mean_s": float(cells[4]),
                "cpu_s": float(cells[7]),
            }
    if not out:
        raise SystemExit(f"{path}: no per-rule table (| rule | jobs | total | ... |) found")
    return out


def critical_path_lines(workdir: Path, label: str) -> list[str]:
    """The critical path of the run in ``workdir`` (its newest Snakemake log) as Markdown; a
    line saying why where the log is missing or holds no finished job."""
    try:
        jobs = runlog.parse_jobs(runlog.latest_log(workdir).read_text())
        chain, dependency = runlog.critical_path(jobs), runlog.dependency_path(jobs)
    except (FileNotFoundError, ValueError) as err:
        return [f"## Critical path ({label})", "", f"Not available: {err}"]
    return runlog.critical_path_markdown(chain, f"Critical path ({label})", dependency)


def markdown(
    walls: dict[int, float], per_rule: dict[int, dict], meta: dict, previous=None, paths=None
) -> str:
    lines = ["# Workflow wall time", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    if walls:
        lines += ["", "| cores | wall time [s] | wall time [min] | speed-up vs 1 core | run |"]
        lines += ["| ---: | ---: | ---: | ---: | --- |"]
    base = walls.get(1, (None, 0))[0]
    for cores, (wall, rc) in sorted(walls.items()):
        ratio = f"{base / wall:.2f}" if base else "n/a"
        status = "complete" if rc == 0 else f"FAILED (rc {rc}; jobs after the failure missing)"
        lines.append(f"| {cores} | {wall:.1f} | {wall / 60:.2f} | {ratio} | {status} |")
    for label, rules in per_rule.items():
        total = sum(r["total_s"] for r in rules.values())
        if previous:
            lines += [
                "",
                f"## Per rule against the previous run ({label}; mean seconds per job)",
                "",
            ]
            lines += [
                "| rule | jobs | mean [s] | previous mean [s] | ratio "
                "| CPU per job [s] | previous CPU per job [s] | CPU ratio |"
            ]
            lines += ["| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for rule, r in sorted(rules.items(), key=lambda kv: -kv[1]["total_s"]):
                p = previous.get(rule)
                ratio = f"{r['mean_s'] / p['mean_s']:.2f}" if p and p["mean_s"] > 0 else "new"
                prev = f"{p['mean_s']:.1f}" if p else "–"
                cpu = r["cpu_s"] / r["jobs"]
                pcpu = p["cpu_s"] / p["jobs"] if p else float("nan")
                cratio = f"{cpu / pcpu:.2f}" if p and pcpu > 0 else "new"
                lines.append(f"| {rule} | {r['jobs']} | {r['mean_s']:.1f} | {prev} | {ratio} "
                             f"| {cpu:.1f} | {pcpu:.1f} | {cratio} |")  # fmt: skip
        lines += ["", f"## Per rule ({label}; from the `benchmark:` files)", ""]
        lines += [
            "| rule | jobs | total [s] | share | mean [s] | max [s] | max RSS [MB] | CPU [s] |"
        ]
        lines += ["| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for rule, r in sorted(rules.items(), key=lambda kv: -kv[1]["total_s"]):
            share = r["total_s"] / total if total else 0.0
            lines.append(
                f"| {rule} | {r['jobs']} | {r['total_s']:.1f} | {share:.0%} | {r['mean_s']:.1f} "
                f"| {r['max_s']:.1f} | {r['max_rss_mb']:.0f} | {r['cpu_s']:.1f} |"
            )
        lines.append(f"| **sum of job times** | {sum(r['jobs'] for r in rules.values())} "
                     f"| {total:.1f} | | | | | |")  # fmt: skip
    for path_lines in (paths or {}).values():
        lines += ["", *path_lines]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configfile", type=Path, default=ROOT / "config/config.yaml")
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workdir", type=Path, default=None, help="base of the run directories")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/workflow.md")
    ap.add_argument("--timeout", type=int, default=4 * 3600, help="hard limit per run [s]")
    ap.add_argument("--summarise", type=Path, default=None, help="only summarise this run dir")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    ap.add_argument(
        "--keep-going", action="store_true", help="on a failed job, finish the others and report"
    )
    ap.add_argument(
        "--previous",
        type=Path,
        default=None,
        help="an earlier table of this script: per-rule means beside this run's, as ratios",
    )
    ap.add_argument(
        "--isa",
        choices=perf.ISAS,
        default=None,
        help="limit oneDNN and OpenBLAS of every job to this instruction set (avx2: "
        "ONEDNN_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell); default: the environment's",
    )
    ap.add_argument("targets", nargs="*", help="targets (default: the default target)")
    args = ap.parse_args(argv)

    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})",
        "configuration": str(args.configfile.resolve().relative_to(ROOT))
        if args.configfile.resolve().is_relative_to(ROOT)
        else str(args.configfile),
        "targets": " ".join(args.targets) or "default (`rule all`)",
        "command": "python benchmarks/workflow.py " + " ".join(argv or sys.argv[1:]),
        "CPU": perf.cpu_name(),
        "instruction set": {
            None: "as the environment set it",
            "native": "native (the CPU's full ISA)",
            "avx2": "avx2 (ONEDNN_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell in every job)",
        }[args.isa],
    }
    walls, per_rule, paths = {}, {}, {}
    if args.summarise:
        per_rule["existing run"] = rule_times(args.summarise)
        paths["existing run"] = critical_path_lines(args.summarise, "existing run")
        meta["configuration"] = meta["targets"] = "those of the existing run"
        meta["run directory"] = str(args.summarise)
    else:
        base = args.workdir or Path(tempfile.mkdtemp(prefix="skydetect_bench_"))
        for cores in args.cores:
            workdir = base / f"cores{cores}"
            walls[cores] = run_workflow(
                workdir,
                args.configfile.resolve(),
                cores,
                args.targets,
                args.timeout,
                args.keep_going,
                args.isa,
            )
            per_rule[f"{cores} core(s)"] = rule_times(workdir)
            paths[f"{cores} core(s)"] = critical_path_lines(workdir, f"{cores} core(s)")
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    previous = read_previous(args.previous) if args.previous else None
    if args.previous:
        meta["previous run"] = str(args.previous)
    text = markdown(walls, per_rule, meta, previous, paths)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
