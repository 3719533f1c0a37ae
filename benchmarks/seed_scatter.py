"""Scatter of the cluster scorecard over training seeds, sky seeds and instruction sets.

Runs the workflow once per combination of a sky seed (the master ``seed``: mock sky, tiles,
datasets and everything after), a training seed (``clusters.train.seed``: the U-Net
trainings alone) and an instruction set (``native``: the CPU's full one; ``avx2``:
``ONEDNN_MAX_CPU_ISA=AVX2``, ``OPENBLAS_CORETYPE=Haswell`` in every job), each in its own
working directory, up to ``results/evaluation/scorecard.ecsv`` (clusters only). The runs of
one sky seed and ISA after the first start from a copy of the first one's directory, so only
the trainings and what follows them run again (``--fresh``: every run from scratch). Writes the
spread (min, max, mean, std) of every headline scorecard number per detector to
benchmarks/results/seed_scatter.md (``--out``), with the standard deviation over the training
seeds alone (the root mean square of the spread within each sky seed and ISA).

Hours on a 2-core machine (3 x 2 x 2 = 12 default runs); not part of any workflow run.

    python benchmarks/seed_scatter.py                                # 3 x 2 x 2 runs
    python benchmarks/seed_scatter.py --seeds 1 2 3 4 --sky-seeds 42 7 --isa native
    python benchmarks/seed_scatter.py --summarise /path/to/base      # existing runs only
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's library

from skydetect import perf  # noqa: E402

SCORECARD = "results/evaluation/scorecard.ecsv"
HEADLINE = ("N_TRUE_AT_P90", "DELTA_MMF", "PURITY_TEST", "THRESHOLD_VAL", "N_CAND", "PURITY",
            "CHANCE_RATE", "C_SNR45", "C_SNR6", "C_SNR45_AT_P90", "THRESHOLD_AT_P90")  # fmt: skip


def plan_runs(seeds, sky_seeds, isas) -> list[dict]:
    """Every (sky seed, ISA, training seed), the training seed varying fastest."""
    if len(set(seeds)) != len(seeds) or len(set(sky_seeds)) != len(sky_seeds):
        raise SystemExit("--seeds / --sky-seeds: repeated values")
    for isa in isas:
        if isa not in perf.ISAS:
            raise SystemExit(f"--isa: {isa!r} is not one of {', '.join(perf.ISAS)}")
    return [
        {"label": f"sky{sky}_{isa}_train{seed}", "sky_seed": int(sky), "seed": int(seed),
         "isa": isa, "group": f"sky{sky}_{isa}"}  # fmt: skip
        for sky in sky_seeds
        for isa in isas
        for seed in seeds
    ]


def snakemake_command(workdir: Path, configfile: Path, cores: int, run: dict) -> list[str]:
    """The Snakemake command of one run (clusters only, up to the scorecard)."""
    config = [f"seed={run['sky_seed']}", "detectors=[clusters]",
              f"clusters={{train: {{seed: {run['seed']}}}}}"]  # fmt: skip
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(configfile),
            "--cores", str(cores), SCORECARD, "--config", *config]  # fmt: skip


def run_one(run: dict, workdir: Path, configfile: Path, cores: int, timeout_s: int,
            copy_from: Path | None = None) -> tuple[float, int]:  # fmt: skip
    """One run in ``workdir`` (a copy of ``copy_from`` if given): (wall seconds, return code)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    if copy_from is not None:
        shutil.copytree(copy_from, workdir, symlinks=True)
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = ["timeout", "-s", "KILL", str(timeout_s)]
    cmd += snakemake_command(workdir, configfile, cores, run)
    print(f"[seed scatter] {run['label']}: {workdir}", flush=True)
    t0 = time.perf_counter()
    with open(workdir / "snakemake.out", "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                            env=perf.isa_environment(run["isa"])).returncode  # fmt: skip
    return time.perf_counter() - t0, rc


def read_scorecards(paths: dict[str, Path]) -> dict[str, dict[str, dict[str, float]]]:
    """label -> detector -> headline column -> value, from each run's scorecard.ecsv."""
    from astropy.table import Table

    out = {}
    for label, path in paths.items():
        if not Path(path).exists():
            raise SystemExit(f"{label}: no scorecard at {path}")
        t = Table.read(path, format="ascii.ecsv")
        if "DETECTOR" not in t.colnames:
            raise SystemExit(f"{path}: no DETECTOR column")
        out[label] = {
            str(r["DETECTOR"]): {c: float(r[c]) for c in HEADLINE if c in t.colnames} for r in t
        }
    return out


def _stats(xs: list[float]) -> dict[str, float]:
    x = [v for v in xs if math.isfinite(v)]
    if not x:
        return {"n": 0, "min": math.nan, "max": math.nan, "mean": math.nan, "std": math.nan}
    mean = sum(x) / len(x)
    var = sum((v - mean) ** 2 for v in x) / (len(x) - 1) if len(x) > 1 else math.nan
    return {"n": len(x), "min": min(x), "max": max(x), "mean": mean, "std": math.sqrt(var)}


def spread(cards: dict, groups: dict[str, str] | None = None) -> list[dict]:
    """Per (detector, quantity): n (finite values), min, max, mean, std (sample) over the runs,
    and ``std_train``: the root mean square of the std within each group (runs of one sky seed
    and ISA; NaN without groups of two or more)."""
    groups = groups or {}
    detectors = list(dict.fromkeys(d for c in cards.values() for d in c))
    rows = []
    for det in detectors:
        for q in HEADLINE:
            vals = {lab: c[det][q] for lab, c in cards.items() if q in c.get(det, {})}
            if not vals:
                continue
            within = []
            for g in sorted(set(groups.get(lab) for lab in vals) - {None}):
                s = _stats([v for lab, v in vals.items() if groups.get(lab) == g])["std"]
                if math.isfinite(s):
                    within.append(s)
            std_train = math.sqrt(sum(s * s for s in within) / len(within)) if within else math.nan
            rows.append({"detector": det, "quantity": q, **_stats(list(vals.values())),
                         "std_train": std_train, "runs": len(vals)})  # fmt: skip
    return rows


def _f(x: float) -> str:
    if not math.isfinite(x):
        return "–"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3f}"


def markdown(rows: list[dict], meta: dict, runs: list[dict]) -> str:
    lines = ["# Scorecard scatter over seeds and instruction sets", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "| detector | quantity | runs (finite) | min | max | mean | std "
              "| std, training seed only |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['detector']} | {r['quantity']} | {r['runs']} ({r['n']}) "
                     f"| {_f(r['min'])} | {_f(r['max'])} | {_f(r['mean'])} | {_f(r['std'])} "
                     f"| {_f(r['std_train'])} |")  # fmt: skip
    lines += ["", "| run | sky seed | ISA | training seed | wall [min] | status |",
              "| --- | ---: | --- | ---: | ---: | --- |"]  # fmt: skip
    for r in runs:
        wall = r.get("wall_s", math.nan)
        status = {None: "existing", 0: "complete", "missing": "not run"}.get(
            r.get("rc"), f"FAILED (rc {r.get('rc')})"
        )
        lines.append(f"| {r['label']} | {r['sky_seed']} | {r['isa']} | {r['seed']} "
                     f"| {_f(wall / 60)} | {status} |")  # fmt: skip
    lines += ["", "std: sample standard deviation over every run; '–' where a quantity is "
              "never finite (e.g. purity 0.90 never reached) or there is one run."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds")
    ap.add_argument("--sky-seeds", type=int, nargs="+", default=[42, 7], help="master seeds")
    ap.add_argument("--isa", choices=[*perf.ISAS, "both"], default="both")
    ap.add_argument("--configfile", type=Path, default=ROOT / "config/config.yaml")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="base of the run directories")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/seed_scatter.md")
    ap.add_argument("--timeout", type=int, default=6 * 3600, help="hard limit per run [s]")
    ap.add_argument("--fresh", action="store_true", help="every run from scratch (no copies)")
    ap.add_argument("--summarise", type=Path, default=None,
                    help="only summarise the runs under this base directory")  # fmt: skip
    args = ap.parse_args(argv)
    if len(args.seeds) < 3 or len(args.sky_seeds) < 2:
        print("note: fewer than 3 training seeds or 2 sky seeds: a thin spread", flush=True)
    runs = plan_runs(args.seeds, args.sky_seeds, perf.isa_list(args.isa))
    base = args.summarise or args.workdir or Path(tempfile.mkdtemp(prefix="skydetect_seeds_"))
    first = {}
    for run in runs:
        workdir = base / run["label"]
        if args.summarise:
            continue
        copy = None if args.fresh else first.get(run["group"])
        run["wall_s"], run["rc"] = run_one(run, workdir, args.configfile.resolve(), args.cores,
                                           args.timeout, copy)  # fmt: skip
        if run["rc"] == 0:
            first.setdefault(run["group"], workdir)
    done = [r for r in runs if r.get("rc", 0) == 0 and (base / r["label"] / SCORECARD).exists()]
    for r in runs:  # summarising: a planned run without a scorecard was not run (or failed)
        if args.summarise and r not in done:
            r["rc"] = "missing"
    cards = read_scorecards({r["label"]: base / r["label"] / SCORECARD for r in done})
    rows = spread(cards, {r["label"]: r["group"] for r in done})
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": perf.cpu_name(),
        "configuration": str(args.configfile),
        "runs": f"{len(done)} of {len(runs)} with a scorecard",
        "base directory": str(base),
        "command": "python benchmarks/seed_scatter.py " + " ".join(argv or sys.argv[1:]),
    }
    text = markdown(rows, meta, runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0 if len(done) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
