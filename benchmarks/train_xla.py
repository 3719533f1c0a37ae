"""Benchmark: the default U-Net's training step with and without XLA, on this CPU.

The training step of ``Model.fit`` as ``skydetect.clusters.train`` compiles it
(``benchmarks/train_profile.unet_setup``: the default model, loss, optimiser and metrics, an
in-memory batch of ``clusters.train.batch_size``), on the training jobs' threads, each in a
fresh process per instruction set (``native``; ``avx2``: ``ONEDNN_MAX_CPU_ISA=AVX2``,
``OPENBLAS_CORETYPE=Haswell``):

* ``graph, deterministic``: TensorFlow's graph with op determinism, as the workflow trains;
* ``graph``: the same without op determinism;
* ``XLA``: compiled by XLA (``jit_compile=True``), without op determinism;
* ``XLA, deterministic``: tried; TensorFlow refuses it when an op (the max-pooling gradient)
  has no deterministic XLA kernel, and the table says so.

The ratio to the first says whether XLA would speed the workflow's training up here.

    python benchmarks/train_xla.py [--isa both] [--steps 8]

Writes benchmarks/results/train_xla.md; its last lines are
``xla: <ratio> x the deterministic graph's step time (<isa>)``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

MODES = {  # label: (jit_compile, deterministic)
    "graph, deterministic": (False, True),
    "graph": (False, False),
    "XLA": (True, False),
    "XLA, deterministic": (True, True),
}


def measure(mode: str, steps: int, threads: int) -> dict:
    """Step times (s) of one mode after two warm-up steps, or the error that stopped it."""
    import skydetect  # noqa: F401  (legacy Keras before TensorFlow)

    import tensorflow as tf  # isort: skip

    import train_profile as tp  # isort: skip

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    jit, det = MODES[mode]
    net = tp.unet_setup(tp.load_config(), jit_compile=jit, deterministic=det)
    try:
        net["step"]()  # build and compile
        net["step"]()
    except tf.errors.OpError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "deterministic" in ln), lines[0] if lines else "")
        return {"error": why[:200], "batch": net["batch"]}
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        net["step"]()
        times.append(time.perf_counter() - t)
    return {"times": times, "batch": net["batch"]}


def run_mode(isa: str, mode: str, steps: int, threads: int) -> dict:
    from skydetect import perf

    env = perf.isa_environment(isa, {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    env["CUDA_VISIBLE_DEVICES"] = ""
    out = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps([mode, steps, threads])],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"{isa}, {mode}: measurement failed:\n{out.stderr[-3000:]}")
    return {"isa": isa, "mode": mode, **json.loads(out.stdout.strip().splitlines()[-1])}


def markdown(results: list[dict], threads: int) -> str:
    from skydetect import perf

    lines = [
        "# U-Net training step: TensorFlow graph against XLA",
        "",
        f"- CPU: {perf.cpu_name()}; {threads} thread(s), as the training jobs run",
        f"- command: python benchmarks/train_xla.py (load {os.getloadavg()[0]:.2f})",
        "",
        "| ISA | mode | batch | best [ms] | median [ms] | best / deterministic graph |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    tail, base = [], {}
    for r in results:
        if "error" in r:
            lines.append(f"| {r['isa']} | {r['mode']} | {r['batch']} | – | – | refused: "
                         f"{r['error'].replace('|', '/')} |")  # fmt: skip
            continue
        t = sorted(r["times"])
        base.setdefault(r["isa"], t[0])
        ratio = t[0] / base[r["isa"]]
        lines.append(f"| {r['isa']} | {r['mode']} | {r['batch']} | {1e3 * t[0]:.0f} "
                     f"| {1e3 * t[len(t) // 2]:.0f} | {ratio:.2f} |")  # fmt: skip
        if r["mode"] == "XLA":
            tail.append(f"xla: {ratio:.2f} x the deterministic graph's step time ({r['isa']})")
    return "\n".join([*lines, "", *tail]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isa", default="both", choices=("native", "avx2", "both"))
    ap.add_argument("--steps", type=int, default=8, help="timed steps of each mode")
    ap.add_argument("--threads", type=int, default=None, help="default: clusters.train.threads")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/train_xla.md"))
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(*json.loads(args.measure))))
        return
    import train_profile as tp

    from skydetect import perf

    threads = args.threads or int(tp.load_config()["clusters"]["train"]["threads"])
    results = []
    for isa in perf.isa_list(args.isa):
        for mode in MODES:
            print(f"[train_xla] {isa}, {mode} ...", flush=True)
            results.append(run_mode(isa, mode, args.steps, threads))
    text = markdown(results, threads)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
