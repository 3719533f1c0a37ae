"""Benchmark: bubble SSD on CPU — time per 3° tile and training images per second.

Compares the default CPU backbone (``light``, 128 px input) with the reference's SSD300
(``vgg16``, 300 px input) as a ratio. The tile is a 3° x 2° field at the default mock pixel
(8"; 1350 x 900 px) with the default window sides (12', 24', 48', stride 1/3); its content is
a smooth random sky with point sources (the timing does not depend on it, apart from the
number of boxes reaching NMS, which the untrained networks make large: a pessimistic case).
Network and preprocessing times are measured on a sample of windows and scaled to the tile;
NMS + merging on the full tile for ``light``.

    python benchmarks/detect_bubbles.py [--sample 192] [--threads 2]

Writes benchmarks/results/detect_bubbles.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np

import skydetect  # noqa: F401  (before TensorFlow)
from skydetect.bubbles.detect import DetectSettings, window_detections
from skydetect.bubbles.preprocess import preprocess_window
from skydetect.bubbles.ssd.model import build_ssd, predict_boxes
from skydetect.bubbles.train import TrainSettings, make_targets, set_threads
from skydetect.bubbles.windows import sizes_to_pixels, sliding_windows

PIXEL_ARCSEC = 8.0
SHAPE = (900, 1350)  # 2° x 3°
SIZES_ARCMIN = [12, 24, 48]


def mock_tile(rng) -> np.ndarray:
    from scipy import ndimage

    data = np.empty((2, *SHAPE), np.float32)
    for c in range(2):
        sky = ndimage.gaussian_filter(rng.normal(size=SHAPE), 20) * 200 + 50
        stars = np.zeros(SHAPE)
        idx = rng.integers(0, SHAPE[0] * SHAPE[1], 3000)
        stars.flat[idx] = rng.exponential(50, idx.size)
        data[c] = sky + ndimage.gaussian_filter(stars, 1.0) + rng.normal(0, 0.5, SHAPE)
    return data


def bench_backbone(
    backbone: str, input_size: int, data, windows, sample: int, rng, batch: int, n_steps: int
) -> dict:
    import tensorflow as tf

    model, priors = build_ssd({"backbone": backbone, "input_size": input_size})
    n = len(windows[0])
    pick = rng.choice(n, size=min(sample, n), replace=False)
    pre = partial(preprocess_window, input_size=input_size)
    t0 = time.perf_counter()
    x = np.stack([pre(data, windows[0][i], windows[1][i], windows[2][i]) for i in pick])
    t_pre = (time.perf_counter() - t0) / len(pick)
    predict_boxes(model, priors, x[:8], batch_size=32)  # warm-up (graph tracing)
    t0 = time.perf_counter()
    boxes, scores = predict_boxes(model, priors, x, batch_size=32)
    t_net = (time.perf_counter() - t0) / len(pick)
    settings = DetectSettings()
    t0 = time.perf_counter()
    for b, s in zip(boxes, scores, strict=True):
        window_detections(b, s, settings)
    t_nms = (time.perf_counter() - t0) / len(pick)
    # training throughput: batches of half bubble crops, half negatives
    from skydetect.bubbles.ssd.loss import SSDLoss

    ts = TrainSettings()
    opt = tf.keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=1e-3, global_clipnorm=1.0)
    loss_fn = SSDLoss()
    half = batch // 2
    bx = [np.array([[0.3, 0.3, 0.7, 0.7]]) * input_size] * half + [np.zeros((0, 4))] * half
    xb = tf.constant(np.resize(x, (2 * half, *x.shape[1:])))
    yb = tf.constant(make_targets(bx, input_size, priors, ts.iou_match))

    @tf.function
    def step(xx, yy):
        with tf.GradientTape() as tape:
            loss = loss_fn(yy, model(xx, training=True))
        g = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(g, model.trainable_variables, strict=True))
        return loss

    step(xb, yb)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step(xb, yb)
    img_s = n_steps * 2 * half / (time.perf_counter() - t0)
    return {
        "backbone": backbone,
        "input": input_size,
        "priors": len(priors),
        "params_M": model.count_params() / 1e6,
        "windows": n,
        "sample": len(pick),
        "batch": 2 * half,
        "pre_ms": 1e3 * t_pre,
        "net_ms": 1e3 * t_net,
        "nms_ms": 1e3 * t_nms,
        "tile_s": n * (t_pre + t_net + t_nms),
        "train_img_s": img_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=192, help="windows timed (light)")
    ap.add_argument("--sample-vgg", type=int, default=32, help="windows timed (vgg16)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "detect_bubbles.md"))
    args = ap.parse_args()
    set_threads(args.threads)
    rng = np.random.default_rng(0)
    data = mock_tile(rng)
    sizes = sizes_to_pixels(SIZES_ARCMIN, PIXEL_ARCSEC, SHAPE)
    windows = sliding_windows(SHAPE, sizes, 1 / 3)
    rows = [
        bench_backbone("light", 128, data, windows, args.sample, rng, batch=32, n_steps=8),
        bench_backbone("vgg16", 300, data, windows, args.sample_vgg, rng, batch=16, n_steps=2),
    ]
    light, vgg = rows
    head = (
        "| backbone | input | priors | params [M] | windows / tile | preprocess [ms/win] "
        "| network [ms/win] | NMS [ms/win] | time per 3° tile [s] | windows timed "
        "| training [img/s] (batch) |"
    )
    lines = [
        "# Bubble SSD on CPU: time per 3° tile and training throughput",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at the start, {args.threads} TensorFlow "
        f'threads; tile {SHAPE[1]} x {SHAPE[0]} px at {PIXEL_ARCSEC}" (3° x 2°), windows '
        f"{SIZES_ARCMIN} arcmin = {list(map(int, sizes))} px, stride 1/3; "
        "a sample of windows timed per backbone (column), scaled to the tile. Training: "
        "half bubble crops, half negatives per batch, AdamW with clipping.",
        "",
        "Command: `python benchmarks/detect_bubbles.py --threads 2`",
        "",
        head,
        "|" + "---|" * 11,
    ]
    for r in rows:
        lines.append(
            f"| {r['backbone']} | {r['input']} | {r['priors']} | {r['params_M']:.1f} | "
            f"{r['windows']} | {r['pre_ms']:.1f} | {r['net_ms']:.1f} | {r['nms_ms']:.2f} | "
            f"{r['tile_s']:.0f} | {r['sample']} | {r['train_img_s']:.1f} ({r['batch']}) |"
        )
    lines += [
        "",
        f"Ratio vgg16 (reference SSD300) / light: time per tile "
        f"{vgg['tile_s'] / light['tile_s']:.1f}x, training images per second "
        f"{light['train_img_s'] / vgg['train_img_s']:.1f}x slower.",
        "",
        "The real GLIMPSE pixel is 1.2\" (6.7x finer): with windows of 3'-60' (150-3000 px) a "
        "3° tile has ~100x more windows than this mock tile.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
