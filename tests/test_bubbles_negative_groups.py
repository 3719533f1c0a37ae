"""Groups of negative windows (skydetect.bubbles.negative_groups): k-means on window
features."""

from __future__ import annotations

import numpy as np

from skydetect.bubbles.negative_groups import group_windows, window_features


def test_kmeans_separates_distinct_populations():
    rng = np.random.default_rng(0)
    rings = np.zeros((30, 32, 32, 2), np.float32)
    yy, xx = np.mgrid[:32, :32]
    rings[..., 1] = (np.abs(np.hypot(xx - 15.5, yy - 15.5) - 10) < 2)[None]
    blobs = np.zeros((30, 32, 32, 2), np.float32)
    blobs[..., 0] = np.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / 20)[None]
    x = np.concatenate([rings, blobs]) + rng.normal(0, 0.05, (60, 32, 32, 2)).astype(np.float32)
    labels = group_windows(window_features(x, 4), 2, seed=0)
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1
    assert labels[0] != labels[30]
