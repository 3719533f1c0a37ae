"""Shared helpers for the bubble SSD tests: ring images, their crops, a small model to train."""

import numpy as np
import pytest

import skydetect  # noqa: F401  (before TensorFlow)
from skydetect.bubbles.train_data import ValidationField
from skydetect.bubbles.train_settings import TrainSettings

tf = pytest.importorskip("tensorflow")


S = 32


def _ring(rng, n):
    """Images with a bright disc (24 µm) inside a ring (8 µm); boxes in input pixels."""
    yy, xx = np.mgrid[:S, :S] + 0.5
    xs, bs = [], []
    for _ in range(n):
        r = rng.uniform(5, 9)
        cx, cy = rng.uniform(r + 2, S - r - 2, 2)
        d = np.hypot(xx - cx, yy - cy)
        img = np.stack([np.exp(-((d / (0.5 * r)) ** 2)), np.exp(-(((d - r) / 1.5) ** 2))], -1)
        xs.append((img + rng.normal(0, 0.05, img.shape)).astype(np.float32))
        bs.append(np.array([[cx - 1.3 * r, cy - 1.3 * r, cx + 1.3 * r, cy + 1.3 * r]]))
    return xs, bs


class _Crops:
    def __init__(self, seed):
        self.seed = seed

    def epoch(self, e):
        xs, bs = _ring(np.random.default_rng([self.seed, e]), 12)
        yield from zip(xs, bs, strict=True)


def _setup(tmp_path, name):
    from skydetect.bubbles.ssd.model import build_ssd

    tf.keras.utils.set_random_seed(5)
    model, priors = build_ssd(
        {
            "backbone": "light",
            "input_size": S,
            "aspect_ratios": [[2], [2]],
            "scales": [0.4, 0.7, 0.95],
        }
    )
    rng = np.random.default_rng(9)
    neg = {
        "inputs": rng.normal(0.2, 0.05, (10, S, S, 2)).astype(np.float32),
        "weight": np.r_[np.ones(5), np.zeros(5)],
    }
    vx, vb = _ring(rng, 3)
    val = [
        ValidationField(
            "v",
            np.stack(vx),
            np.array([0, 100, 200]),
            np.zeros(3, int),
            np.full(3, S),
            np.concatenate(vb) + [[0, 0, 0, 0], [100, 0, 100, 0], [200, 0, 200, 0]],
            np.ones(3, bool),
        )
    ]
    settings = TrainSettings(
        epochs=2,
        patience=5,
        batch_bubbles=4,
        batch_negatives=2,
        learning_rate=3e-3,
        thresholds=[0.5, 0.7, 0.9],
    )
    return model, priors, neg, val, settings, tmp_path / name
