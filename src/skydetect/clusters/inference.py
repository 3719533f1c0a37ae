"""The U-Net inference runtime: a compiled predict step, threads, precision, model cost.

- :class:`CompiledPredictor`: one ``tf.function`` of the network, traced once with the batch
  dimension open, fed batches of ``batch_size`` and a last one of what remains (no padded
  patches: a tile of 464 patches in batches of 64 used to cost 512, and the padding alone
  took 10 % off the achieved GFLOP/s; an open batch dimension measured as fast as a fixed
  one, 2 cores); XLA (``jit_compile``, compiled per batch shape) is optional because on CPUs it
  was measured *slower* than TensorFlow's oneDNN kernels (default U-Net, 2 cores: 165 vs 362
  patches/s in float32, 110 vs 1356 in bfloat16; ``benchmarks/full_sky_inference.py``).
  The batch of 64 (``clusters.detect.batch_size``) is the fastest measured in float32: best of
  four interleaved runs against the best 2048² matmul of the same process, 2 cores, load 1.3:
  batch 16 0.66, 32 0.69, 64 0.75, 128 0.71 of the matmul's GFLOP/s; 256 no better than 64.
  Neither a frozen graph (weights as constants, with or without
  ``TF_ONEDNN_ASSUME_FROZEN_WEIGHTS``), two inter-op threads (0.72) nor TensorFlow's Eigen
  kernels (``TF_ENABLE_ONEDNN_OPTS=0``: 0.50) did better. What remains is in the network:
  the 16-channel convolutions at 64 x 64 (~30 % of the multiply-accumulates) run at about
  half the matmul's rate.
- Streams (``clusters.detect.streams``, :func:`configure_threads`): with ``streams`` batches
  in flight, each op runs on ``threads / streams`` cores. Two one-core streams beat one
  two-core stream on 2 cores (the default U-Net: ~300 vs ~270 GFLOP/s, 0.75-0.81 vs
  0.69-0.71 of a matmul run the same way): small ops no longer wait for each other's
  cores. On one core the network reaches ~0.75 of a one-core matmul (per layer: 0.95 at
  8 x 8 and 16 x 16, 0.6 for the 16-channel convolutions at 64 x 64), so streams bring the
  two cores to what one core does.
- Precision (``clusters.detect.precision``): ``float32``; ``bfloat16`` (Keras policy
  ``mixed_bfloat16``: bfloat16 compute, float32 weights and output), fast on CPUs with
  AVX512-BF16 / AMX; ``mixed`` (``mixed_float16``) for GPUs; ``auto``: ``mixed`` on a GPU,
  ``bfloat16`` on a CPU that has AVX512-BF16 or AMX-BF16, else ``float32``.
- :func:`model_macs` (from :mod:`skydetect.perf`): multiply-accumulates of one forward pass
  (convolutions, transposed convolutions, dense layers), to express a measured speed as
  GFLOP/s.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm

from skydetect.clusters import models
from skydetect.perf import BF16_FLAGS, bf16_kernels, cpu_flags, cpu_info, model_macs  # noqa: F401

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "bfloat16", "mixed", "auto")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "mixed": "mixed_float16"}


def resolve_precision(precision: str) -> str:
    """``float32`` | ``bfloat16`` | ``mixed`` for ``precision`` (``auto`` resolved here)."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"clusters.detect.precision: {precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    if precision != "auto":
        return precision
    import tensorflow as tf  # lazy: sky-env drivers (no TF) import this module

    if tf.config.list_physical_devices("GPU"):
        return "mixed"
    # the CPU's bfloat16 units, unless ONEDNN_MAX_CPU_ISA keeps oneDNN below them
    return "bfloat16" if bf16_kernels() else "float32"


def resolve_streams(streams: int | None, threads: int) -> int:
    """Batches in flight (``clusters.detect.streams``); null: one per thread on a CPU (each
    batch then runs its ops on one core, without the hand-offs of splitting every op over
    the cores), one on a GPU."""
    if streams is not None:
        if int(streams) < 1:
            raise ValueError(f"clusters.detect.streams: must be at least 1, got {streams}")
        return int(streams)
    import tensorflow as tf  # lazy: sky-env drivers (no TF) import this module

    return 1 if tf.config.list_physical_devices("GPU") else max(1, int(threads))


def configure_threads(threads: int, streams: int | None = None) -> None:
    """TensorFlow on ``threads`` cores (the rule's ``threads:``): ``streams`` ops at a time
    (default: as many as ``threads``), each on ``threads // streams`` cores. The predictor
    then keeps ``streams`` batches in flight (:class:`CompiledPredictor`)."""
    import tensorflow as tf  # lazy: sky-env drivers (no TF) import this module

    streams = int(streams or threads)
    intra, inter = max(1, int(threads) // streams), streams
    current = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    if current == (intra, inter):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # TensorFlow already running in this process: keep its pools
        log.warning("TensorFlow is initialised: its thread pools stay as they are")


def load_for_inference(model_dir, precision: str = "float32"):
    """The network of ``model_dir`` (model.json + weights.h5, see
    :func:`skydetect.clusters.models.load_model`) rebuilt at ``precision``: float32 weights,
    compute in the precision's dtype, float32 probabilities out."""
    precision = resolve_precision(precision)
    if precision == "bfloat16" and not BF16_FLAGS & cpu_flags():
        log.warning("bfloat16 requested on a CPU without AVX512-BF16 / AMX: it will be slow")
    return models.load_model(model_dir, policy=POLICIES[precision])


class CompiledPredictor:
    """``predictor(inputs)`` -> probabilities (N, S, S) float32 of the Keras ``model`` over
    ``inputs`` (N, S, S, B), through one traced ``tf.function``: batches of ``batch_size``,
    the last one of the remaining patches, ``streams`` batches in flight at a time (one per
    stream of :func:`configure_threads`; 1: one after the other)."""

    def __init__(self, model, batch_size: int = 64, jit_compile: bool = False, streams: int = 1):
        import tensorflow as tf  # lazy: sky-env drivers (no TF) import this module

        shape = tuple(model.inputs[0].shape[1:])
        if None in shape:
            raise ValueError(f"the network needs a fixed input shape, has {shape}")
        if int(streams) < 1:
            raise ValueError(f"streams must be at least 1, got {streams}")
        self.batch_size = int(batch_size)
        self.streams = int(streams)
        self.shape = shape
        self.model = model
        spec = tf.TensorSpec((None, *shape), tf.float32)  # one trace for every batch size

        def step(x):
            p = model(x, training=False)
            return tf.cast(p[..., 0] if p.shape.rank == 4 else p, tf.float32)

        self._step = tf.function(step, input_signature=[spec], jit_compile=bool(jit_compile))

    def __call__(self, inputs, progress: bool = False) -> np.ndarray:
        n, b = len(inputs), self.batch_size
        out = np.empty((n, *self.shape[:2]), dtype=np.float32)

        def run(s: int) -> None:
            x = np.asarray(inputs[s : s + b], dtype=np.float32)  # the last one: what remains
            out[s : s + len(x)] = self._step(x).numpy()

        starts = range(0, n, b)
        bar = tqdm(total=len(starts), desc="patches", unit="batch", disable=not progress)
        # TensorFlow releases the GIL while a batch runs: the workers' batches overlap
        with bar, ThreadPoolExecutor(self.streams) as pool:
            for _ in pool.map(run, starts):
                bar.update()
        return out
