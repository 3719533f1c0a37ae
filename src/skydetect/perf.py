"""The machine's compute, for measuring a network against it: CPU, instruction set, matmul
peak, network cost, kernels that ran, per-layer times.

- :func:`cpu_info`, :func:`cpu_flags`: the CPU's name and feature flags (Linux).
- :data:`ISA_ENV`, :func:`isa_environment`: the environment that limits oneDNN (TensorFlow's
  CPU kernels) and OpenBLAS (numpy's) to an instruction set. ``avx2``:
  ``ONEDNN_MAX_CPU_ISA=AVX2`` and ``OPENBLAS_CORETYPE=Haswell``, what a CPU without AVX-512
  runs; ``native``: the CPU's full ISA. Both are read when the libraries load, so they take
  effect only in a fresh process (a subprocess, or every Snakemake job).
- :func:`matmul_timer`, :func:`blas_matmul_timer`: the two ways of running the machine's
  best matmul (TensorFlow's, numpy's BLAS); the peak is the faster of the two, timed in the
  process that is measured, between the measured steps.
- :func:`layer_macs`, :func:`model_macs`: multiply-accumulates of one forward pass
  (convolutions, transposed convolutions, dense layers). Training costs ~3x the forward
  pass (:data:`TRAIN_PASSES`): the forward, and a backward with one product for the
  gradient of the input and one for the gradient of the weights.
- :func:`onednn_kernels`: oneDNN's verbose lines (``ONEDNN_VERBOSE=profile_create``)
  summarised to primitive, implementation (ISA) and pass; :func:`blas_core`: OpenBLAS's
  kernel family (threadpoolctl).
- :func:`layer_times`: each layer of a network timed alone on its own input shape,
  forward and forward + backward; :func:`group_layer_times` sums them by kind and size.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

ISAS = ("native", "avx2")
ISA_ENV = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"},
}
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
#: ONEDNN_MAX_CPU_ISA values (prefixes) under which oneDNN still has bfloat16 kernels
BF16_ISA_LIMITS = ("ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                   "AVX10")  # fmt: skip
#: training FLOP = TRAIN_PASSES x forward FLOP (forward, backward-data, backward-weights)
TRAIN_PASSES = 3


def cpu_info(field: str) -> str | None:
    """The value of ``field`` (e.g. ``flags``, ``model name``) for the first CPU in Linux's
    /proc/cpuinfo; None elsewhere or if absent."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == field:
            return value.strip()
    return None


def cpu_flags() -> set[str]:
    """The CPU feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    return set((cpu_info("flags") or "").split())


def bf16_kernels(env: dict | None = None) -> bool:
    """Whether oneDNN can run bfloat16 here: the CPU has AVX512-BF16 or AMX-BF16 and
    ``ONEDNN_MAX_CPU_ISA`` (in ``env``, default this process's) does not limit it below them
    (under ``AVX2`` a bfloat16 convolution has no kernel and fails)."""
    limit = (os.environ if env is None else env).get("ONEDNN_MAX_CPU_ISA")
    if limit and not limit.upper().startswith(BF16_ISA_LIMITS):
        return False
    return bool(BF16_FLAGS & cpu_flags())


def cpu_name() -> str:
    """The CPU's model name, with its widest vector ISA (from the flags)."""
    name = cpu_info("model name") or platform.processor() or platform.machine()
    flags = cpu_flags()
    isa = next(
        (label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags),
        None,
    )
    return f"{name} ({isa})" if isa else name


def isa_list(isa: str) -> list[str]:
    """The instruction sets a ``--isa`` choice (``native``, ``avx2``, ``both``) runs."""
    if isa == "both":
        return list(ISAS)
    if isa not in ISAS:
        raise ValueError(f"--isa: {isa!r} is not one of {', '.join((*ISAS, 'both'))}")
    return [isa]


def isa_environment(isa: str, env: dict | None = None) -> dict:
    """``env`` (default: this process's) with oneDNN and OpenBLAS limited to ``isa``
    (``native`` removes any such limit inherited from the caller)."""
    if isa not in ISA_ENV:
        raise ValueError(f"--isa: {isa!r} is not one of {', '.join(ISAS)}")
    out = dict(os.environ if env is None else env)
    for key in ISA_ENV["avx2"]:
        out.pop(key, None)
    out.update(ISA_ENV[isa])
    return out


def matmul_timer(tf, n: int = 2048, streams: int = 1, dtype="float32"):
    """A callable timing ``repeats`` n x n ``dtype`` TensorFlow matmuls in each of ``streams``
    threads at once: (FLOP, seconds)."""
    a = tf.cast(tf.random.normal((n, n)), dtype)
    step = tf.function(lambda x: tf.matmul(x, x))
    step(a).numpy()

    def one(repeats):
        for _ in range(repeats):
            step(a).numpy()

    def timed(repeats: int = 2):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(streams) as pool:
            list(pool.map(one, [repeats] * streams))
        return 2 * n**3 * repeats * streams, time.perf_counter() - t0

    return timed


def blas_matmul_timer(threads: int, n: int = 2048):
    """A callable timing ``repeats`` n x n float32 matmuls of numpy's BLAS (OpenBLAS) on
    ``threads`` threads, in this process: (FLOP, seconds). The other way of running the
    machine's best matmul: one op on every core, with BLAS's own threads."""
    a = np.random.default_rng(1).normal(size=(n, n)).astype(np.float32)

    def timed(repeats: int = 2):
        with threadpool_limits(threads, user_api="blas"):
            a @ a  # wake the BLAS threads
            t0 = time.perf_counter()
            for _ in range(repeats):
                a @ a
            return 2 * n**3 * repeats, time.perf_counter() - t0

    return timed


def matmul_gflops(timer, repeats: int = 8) -> float:
    flop, dt = timer(repeats)
    return flop / dt / 1e9


def interleaved(step, steps: int, peers, peer_repeats: int = 2, warmup: int = 2) -> dict:
    """``step()`` called ``steps`` times (after ``warmup`` calls), each call followed by
    ``peer_repeats`` single matmuls of each of ``peers`` (:func:`matmul_timer`,
    :func:`blas_matmul_timer`), so that the steps and their peak see the same load of a
    shared machine. Returns ``step_s`` (each call's seconds) and, per peer, ``flop`` and
    ``seconds`` (totals) and ``gflops`` (each single matmul's rate)."""
    for _ in range(warmup):
        step()
    out = {"step_s": [], "flop": [0] * len(peers), "seconds": [0.0] * len(peers)}
    out["gflops"] = [[] for _ in peers]
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        out["step_s"].append(time.perf_counter() - t0)
        for i, peer in enumerate(peers):
            for _ in range(peer_repeats):
                flop, secs = peer(1)
                out["flop"][i] += flop
                out["seconds"][i] += secs
                out["gflops"][i].append(flop / secs / 1e9)
    return out


def peak_fractions(flop_per_step: float, timing: dict) -> dict:
    """From :func:`interleaved`: the achieved GFLOP/s and its fraction of the peak (the
    faster peer) two ways: ``best``, the fastest step against the fastest single matmul
    (each the least disturbed by other load), and ``mean``, all steps against each peer's
    total FLOP over its total seconds (``benchmarks/full_sky_inference.py``'s pairing)."""
    steps = np.asarray(timing["step_s"], float)
    best_peak = max(max(g) for g in timing["gflops"])
    mean_peaks = [f / s / 1e9 for f, s in zip(timing["flop"], timing["seconds"], strict=True)]
    best = flop_per_step / steps.min() / 1e9
    mean = flop_per_step * len(steps) / steps.sum() / 1e9
    return {
        "gflops_best": best,
        "gflops_mean": mean,
        "peak_best": best_peak,
        "peaks_mean": mean_peaks,
        "fraction_best": best / best_peak,
        "fraction_mean": mean / max(mean_peaks),
    }


def blas_core() -> str:
    """numpy's BLAS and the kernel family it runs (e.g. ``openblas Haswell``)."""
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return f"{info.get('internal_api')} {info.get('architecture') or '?'}"
    return "no BLAS found"


_VERBOSE = re.compile(
    r"onednn_verbose,(?:v1,)?primitive,(?:create|exec)[^,]*,cpu,([^,]+),([^,]+),([^,]+),"
)
_ISA_LINE = re.compile(r"onednn_verbose,(?:v1,)?info,cpu,isa:(.*)")


def onednn_kernels(text: str) -> tuple[str | None, Counter]:
    """From oneDNN verbose output: the ISA oneDNN reports and a count of the primitives run
    (or created) by ``(primitive, implementation, pass)``, e.g. ``("convolution",
    "brg_conv_fwd:avx512_core", "forward_training")``."""
    isa = None
    counts: Counter = Counter()
    for line in text.splitlines():
        m = _ISA_LINE.match(line)
        if m:
            isa = m.group(1).strip()
            continue
        m = _VERBOSE.match(line)
        if m:
            counts[m.groups()] += 1
    return isa, counts


def layer_macs(layer) -> int:
    """Multiply-accumulates of one forward pass of ``layer`` for one input (Conv2D,
    Conv2DTranspose, DepthwiseConv2D, Dense; 0 for the others)."""
    import tensorflow as tf  # lazy: non-TF tools (benchmarks) use the CPU helpers

    if not layer.weights:
        return 0
    kernel = int(np.prod(layer.weights[0].shape))
    if isinstance(layer, tf.keras.layers.Conv2DTranspose):
        h, w = layer.input_shape[1:3]  # every input pixel scatters a kernel
        return h * w * kernel
    if isinstance(layer, (tf.keras.layers.DepthwiseConv2D, tf.keras.layers.Conv2D)):
        h, w = layer.output_shape[1:3]
        return h * w * kernel
    if isinstance(layer, tf.keras.layers.Dense):
        shape = layer.output_shape
        return (int(np.prod(shape[1:-1])) if len(shape) > 2 else 1) * kernel
    return 0


def model_macs(model) -> int:
    """Multiply-accumulates of one forward pass of one input (nested models counted
    through)."""
    import tensorflow as tf  # lazy: non-TF tools (benchmarks) use the CPU helpers

    total = 0
    for layer in model.layers:
        total += model_macs(layer) if isinstance(layer, tf.keras.Model) else layer_macs(layer)
    return int(total)


def leaf_layers(model) -> list:
    """The layers of ``model`` that compute (all but its inputs; nested models walked
    through)."""
    import tensorflow as tf  # lazy: non-TF tools (benchmarks) use the CPU helpers

    out = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            out += leaf_layers(layer)
        elif not isinstance(layer, tf.keras.layers.InputLayer):
            out.append(layer)
    return out


def best_seconds(fn, args, repeats: int) -> float:
    import tensorflow as tf  # lazy: non-TF tools (benchmarks) use the CPU helpers

    tf.nest.map_structure(lambda t: t.numpy(), fn(*args))  # trace, warm up
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def layer_times(model, batch: int, repeats: int = 3) -> list[dict]:
    """Each layer of ``model`` alone (a fresh copy, same configuration) on random inputs of
    its shape at ``batch``: forward seconds and backward seconds (forward + gradients of its
    inputs and weights, less the forward), the best of ``repeats`` each; with the layer's
    name, kind, input/output shape and multiply-accumulates per sample."""
    import tensorflow as tf  # lazy: non-TF tools (benchmarks) use the CPU helpers

    rows = []
    for layer in leaf_layers(model):
        clone = layer.__class__.from_config(layer.get_config())
        shapes = layer.input_shape
        multi = isinstance(shapes, list)
        shapes = shapes if multi else [shapes]
        xs = [tf.random.normal((batch, *s[1:])) for s in shapes]
        clone.build([(batch, *s[1:]) for s in shapes] if multi else (batch, *shapes[0][1:]))
        dy = tf.random.normal((batch, *layer.output_shape[1:]))

        def fwd(xs, c=clone, multi=multi):
            return c(xs if multi else xs[0])

        def both(xs, dy, c=clone, multi=multi):
            with tf.GradientTape() as tape:
                tape.watch(xs)
                y = c(xs if multi else xs[0])
            grads = tape.gradient(y, [*xs, *c.trainable_variables], output_gradients=dy)
            # y too: else a layer whose gradients do not need its output (a convolution
            # without activation) would skip the forward pass, and the difference be wrong
            return [y, *(g for g in grads if g is not None)]

        t_fwd = best_seconds(tf.function(fwd), (xs,), repeats)
        t_both = best_seconds(tf.function(both), (xs, dy), repeats)
        rows.append(
            {
                "name": layer.name,
                "kind": type(layer).__name__,
                "input": tuple(shapes[0][1:]),
                "output": tuple(layer.output_shape[1:]),
                "macs": layer_macs(layer),
                "forward_s": t_fwd,
                "backward_s": max(t_both - t_fwd, 0.0),
            }
        )
    return rows


def group_layer_times(rows: list[dict]) -> list[dict]:
    """:func:`layer_times` rows summed by kind, output size and input -> output channels."""
    groups: dict = {}
    for r in rows:
        h, w, c_out = r["output"][0], r["output"][1], r["output"][-1]
        key = (r["kind"], f"{h}x{w}", f"{r['input'][-1]}->{c_out}")
        g = groups.setdefault(key, {"layers": 0, "macs": 0, "forward_s": 0.0, "backward_s": 0.0})
        g["layers"] += 1
        for k in ("macs", "forward_s", "backward_s"):
            g[k] += r[k]
    return [
        {"kind": k[0], "size": k[1], "channels": k[2], **g}
        for k, g in sorted(groups.items(), key=lambda kv: -kv[1]["forward_s"] - kv[1]["backward_s"])
    ]
