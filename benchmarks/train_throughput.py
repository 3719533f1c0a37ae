"""Benchmark: training of the default U-Net and the default SSD against the machine's own peak.

For each network at its default configuration (config/config.yaml: ``clusters.model`` with
``clusters.train``, 64 x 64 patches of the six HFI bands; ``bubbles.ssd`` with
``bubbles.preprocess`` and ``bubbles.train``), on in-memory random batches after warm-up:

* training samples per second: the training step as the workflow runs it (U-Net: the train
  function of ``Model.fit`` of the compiled model, its loss, Adam, its metrics, op
  determinism as ``skydetect.clusters.train``; SSD: a ``tf.function`` of the SSD loss, AdamW and global
  gradient clipping as ``skydetect.bubbles.train``), batch ``clusters.train.batch_size`` and
  ``batch_bubbles + batch_negatives``;
* achieved GFLOP/s: 3 x 2 x the forward pass's multiply-accumulates per sample (counted layer
  by layer, ``skydetect.perf.model_macs``: the forward, and a backward with one product for
  the input gradient and one for the weight gradient; the first layer's input gradient, which
  training does not need, is counted too) x samples/s;
* as a fraction of the peak: the faster of a 2048² float32 matmul of numpy's BLAS and of
  TensorFlow (the definition of ``benchmarks/full_sky_inference.py``), two of each timed
  after every step in the same process; the headline is the fastest step against the
  fastest single matmul (each the least disturbed by a shared machine's other load), the
  means (all steps against each matmul's mean rate over the same period) beside it;
* the kernels that ran: oneDNN's verbose lines of one training step of each network (in a
  separate process, ``ONEDNN_VERBOSE=profile_create``) summarised to the convolution
  implementations, and OpenBLAS's kernel family;
* where the time goes: every convolution alone on its input shape, forward and backward
  (grouped by output size and channels), the rest of the step (batch normalisation,
  activations, loss, optimiser, Keras); and a short run of the workflow's own training loop on
  synthetic data (U-Net: ``skydetect.clusters.train.train`` on HDF5 files; SSD:
  ``skydetect.bubbles.train.train_ssd`` with preprocessed crops of a synthetic field) split
  into its training steps, data (reading, augmentation; SSD: crops and box matching),
  validation, and the rest (Python, callbacks, checkpoints).

``--isa native`` (the CPU's full ISA), ``avx2`` (``ONEDNN_MAX_CPU_ISA=AVX2``,
``OPENBLAS_CORETYPE=Haswell``: a CPU without AVX-512) or ``both``; each in a fresh subprocess.

Each at ``--threads`` (default: the training jobs' ``clusters.train.threads``, 1, as the
workflow runs them, two side by side on 2 cores; then all the cores).

    python benchmarks/train_throughput.py [--isa both] [--steps 6] [--threads 1 2]

Writes benchmarks/results/train_throughput.md; its last lines (and the last printed lines)
are ``training: unet <x> of peak, ssd <y> of peak (<isa>)``, one per ISA, at the first
``--threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import train_profile as tp  # noqa: E402  (the measurements, run in the subprocesses)


def run_isa(isa: str, threads: int, detail: bool, args) -> dict:
    """The measurements of one ISA and thread count in a fresh process; with ``detail`` the
    per-layer and training-loop split too, and the kernels (in another process)."""
    from skydetect import perf

    env = perf.isa_environment(isa, {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    env["CUDA_VISIBLE_DEVICES"] = ""
    spec = json.dumps(
        {"steps": args.steps, "threads": threads, "loop": args.loop, "detail": detail}
    )
    script = str(ROOT / "benchmarks" / "train_profile.py")
    out = subprocess.run(
        [sys.executable, script, "measure", spec], capture_output=True, text=True, env=env
    )
    if out.returncode:
        raise SystemExit(f"{isa}, {threads} threads: measurement failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(isa=isa, detail=detail)
    if not detail:
        return res
    kenv = {**env, "ONEDNN_VERBOSE": "profile_create", "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryFile("w+") as log:
        k = subprocess.run(
            [sys.executable, script, "kernels", spec], stdout=log, stderr=log, text=True, env=kenv
        )
        log.seek(0)
        text = log.read()
    if k.returncode:
        raise SystemExit(f"{isa}: kernel census failed:\n{text[-3000:]}")
    res["kernels"] = tp.kernel_summary(text)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isa", default="both", choices=("native", "avx2", "both"))
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per network")
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="thread counts (default: the training jobs' clusters.train.threads, then all "
        "cores); the first gets the per-layer and training-loop split and the headline",
    )
    ap.add_argument(
        "--loop", type=int, default=8, help="batches per epoch of the short training-loop runs"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/train_throughput.md"))
    args = ap.parse_args()

    from skydetect import perf

    if not args.threads:
        jobs = int(tp.load_config()["clusters"]["train"]["threads"])
        args.threads = list(dict.fromkeys([jobs, os.cpu_count() or jobs]))
    results = []
    for isa in perf.isa_list(args.isa):
        for i, threads in enumerate(args.threads):
            print(f"[train_throughput] {isa}, {threads} thread(s) ...", flush=True)
            results.append(run_isa(isa, threads, i == 0, args))
    text = tp.markdown(results, args, os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
