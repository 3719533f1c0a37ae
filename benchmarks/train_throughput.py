"""Benchmark: training and inference throughput of the eight U-Net architectures on CPU.

For each architecture of ``skydetect.clusters.models`` at the default configuration
(config/config.yaml: ``clusters.model.filter_num``, 64 x 64 patches of ``clusters.patch.size``,
the bands of ``planck.bands``, ``clusters.train.batch_size`` and loss), measured in a fresh
subprocess each (so that the peak memory is that architecture's own):

* training samples per second (``train_on_batch`` on in-memory batches, after warm-up),
* inference samples per second (``predict_on_batch``),
* peak resident memory of the process (MiB),
* parameters,

and the ratio of each throughput to that of ``unet`` (the peer). A last row gives ``unet`` with
the reference filters (64..1024). Prints a table and writes benchmarks/results/train_throughput.md.

    python benchmarks/train_throughput.py [--steps 6] [--threads 2] [--no-reference]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(arch: str, filters: list[int], size: int, bands: int, batch: int, loss: str,
            steps: int, threads: int) -> dict:  # fmt: skip
    import resource

    import numpy as np

    import skydetect  # noqa: F401  (legacy Keras before TensorFlow)

    import tensorflow as tf  # isort: skip

    from skydetect.clusters import losses, models

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, bands)).astype(np.float32)
    y = (rng.random((batch, size, size, 1)) < 0.05).astype(np.float32)
    model = models.build_model((size, size, bands), {"architecture": arch, "filter_num": filters})
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=losses.get_loss(loss))
    for _ in range(2):  # warm-up: tracing
        model.train_on_batch(x, y)
        model.predict_on_batch(x)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    t_pred = time.perf_counter() - t0
    return {
        "arch": arch,
        "filters": filters,
        "params": int(model.count_params()),
        "train_sps": steps * batch / t_train,
        "infer_sps": steps * batch / t_pred,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6, help="timed batches per measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-reference", action="store_true", help="skip unet with 64..1024 filters")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one setting (JSON)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(**json.loads(args.one))))
        return

    import yaml

    from skydetect.clusters.models import ARCHITECTURES
    from skydetect.config import validate_config

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate_config(cfg, ROOT / "config" / "schema.yaml")
    cl = cfg["clusters"]
    common = dict(
        size=int(cl["patch"].get("size", 64)),
        bands=len(cfg["planck"]["bands"]),
        batch=int(cl["train"]["batch_size"]),
        loss=cl["train"]["loss"],
        steps=args.steps,
        threads=args.threads,
    )
    runs = [dict(arch=a, filters=cl["model"]["filter_num"]) for a in ARCHITECTURES]
    if not args.no_reference:
        runs.append(dict(arch="unet", filters=[64, 128, 256, 512, 1024]))
    rows = []
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for run in runs:
        spec = json.dumps({**run, **common})
        out = subprocess.run(
            [sys.executable, __file__, "--one", spec], capture_output=True, text=True, env=env
        )
        if out.returncode:
            raise RuntimeError(f"{run}: {out.stderr[-2000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)

    peer = next(r for r in rows if r["arch"] == "unet")
    load = os.getloadavg()[0]
    lines = [
        "# Training and inference throughput of the U-Net architectures (CPU)",
        "",
        f"`python benchmarks/train_throughput.py --steps {args.steps} --threads {args.threads}`"
        f" — {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} TensorFlow threads, load average {load:.1f} at the end "
        "(other jobs share the machine: compare ratios, not absolute numbers).",
        f"Patches {common['size']}x{common['size']}x{common['bands']}, batch {common['batch']}, "
        f"loss {common['loss']}, Adam; {args.steps} timed batches after 2 warm-up batches.",
        "Ratios are to `unet` at the same filters (the peer).",
        "",
        "| architecture | filters | parameters | train samples/s | ratio | inference samples/s "
        "| ratio | peak memory MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {'-'.join(map(str, r['filters']))} | {r['params']:,} "
            f"| {r['train_sps']:.1f} | {r['train_sps'] / peer['train_sps']:.2f} "
            f"| {r['infer_sps']:.1f} | {r['infer_sps'] / peer['infer_sps']:.2f} "
            f"| {r['peak_mib']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "train_throughput.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
