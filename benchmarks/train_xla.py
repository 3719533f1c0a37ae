"""Benchmark: the default U-Net's training step with and without XLA, on this CPU.

The training step of ``Model.fit`` as ``skydetect.clusters.train`` compiles it
(``benchmarks/train_profile.unet_setup``: the default model, loss, optimiser, metrics and op
determinism, an in-memory batch of ``clusters.train.batch_size``), once as TensorFlow's graph
and once compiled by XLA (``jit_compile=True``), the two timed in turn in one process on the
training jobs' threads, for each instruction set (``native``; ``avx2``:
``ONEDNN_MAX_CPU_ISA=AVX2``, ``OPENBLAS_CORETYPE=Haswell``) in a fresh process. The ratio
says whether XLA would speed training up here.

    python benchmarks/train_xla.py [--isa both] [--steps 8]

Writes benchmarks/results/train_xla.md; its last lines are
``xla: <ratio> x the graph's step time (<isa>)``.
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


def measure(steps: int, threads: int) -> dict:
    """Step times (s) of the graph and the XLA train step, timed in turn after warm-up."""
    import skydetect  # noqa: F401  (legacy Keras before TensorFlow)

    import tensorflow as tf  # isort: skip

    import train_profile as tp  # isort: skip

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    cfg = tp.load_config()
    nets = {"graph": tp.unet_setup(cfg), "xla": tp.unet_setup(cfg, jit_compile=True)}
    times = {k: [] for k in nets}
    for net in nets.values():
        net["step"]()  # build and compile
        net["step"]()
    for _ in range(steps):
        for k, net in nets.items():
            t = time.perf_counter()
            net["step"]()
            times[k].append(time.perf_counter() - t)
    return {"times": times, "batch": nets["graph"]["batch"]}


def run_isa(isa: str, steps: int, threads: int) -> dict:
    from skydetect import perf

    env = perf.isa_environment(isa, {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    env["CUDA_VISIBLE_DEVICES"] = ""
    out = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps([steps, threads])],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"{isa}: measurement failed:\n{out.stderr[-3000:]}")
    return {"isa": isa, **json.loads(out.stdout.strip().splitlines()[-1])}


def markdown(results: list[dict], threads: int) -> str:
    from skydetect import perf

    lines = [
        "# U-Net training step: TensorFlow graph against XLA",
        "",
        f"- CPU: {perf.cpu_name()}; {threads} thread(s), as the training jobs run",
        f"- command: python benchmarks/train_xla.py (load {os.getloadavg()[0]:.2f})",
        "",
        "| ISA | batch | graph: best / median [ms] | XLA: best / median [ms] | XLA / graph (best) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    tail = []
    for r in results:
        g, x = sorted(r["times"]["graph"]), sorted(r["times"]["xla"])
        ratio = x[0] / g[0]
        lines.append(
            f"| {r['isa']} | {r['batch']} | {1e3 * g[0]:.0f} / {1e3 * g[len(g) // 2]:.0f} "
            f"| {1e3 * x[0]:.0f} / {1e3 * x[len(x) // 2]:.0f} | {ratio:.2f} |"
        )
        tail.append(f"xla: {ratio:.2f} x the graph's step time ({r['isa']})")
    return "\n".join([*lines, "", *tail]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isa", default="both", choices=("native", "avx2", "both"))
    ap.add_argument("--steps", type=int, default=8, help="timed steps of each")
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
        print(f"[train_xla] {isa} ...", flush=True)
        results.append(run_isa(isa, args.steps, threads))
    text = markdown(results, threads)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
