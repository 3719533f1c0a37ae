"""Figures of the bubble training data: negative-class montages and fields with their boxes.

False colour throughout: red = 24 µm, green = 8 µm, blue = 8 µm / 2 (inputs in [0, 1]).
"""

from __future__ import annotations

import matplotlib

from skydetect.io.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402


def false_colour(x: np.ndarray) -> np.ndarray:
    """(S, S, 2) input (24 µm, 8 µm) in [0, 1] -> (S, S, 3) RGB."""
    x = np.clip(np.nan_to_num(np.asarray(x, float)), 0, 1)
    return np.stack([x[..., 0], x[..., 1], 0.5 * x[..., 1]], axis=-1)


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def plot_montage(inputs: np.ndarray, path, title: str, ncols: int = 5) -> None:
    """A grid of preprocessed windows (N, S, S, 2), origin lower left as the fields."""
    n = len(inputs)
    ncols = max(1, min(ncols, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.8 * ncols, 1.8 * nrows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, x in zip(axes.ravel(), inputs, strict=False):
        ax.imshow(false_colour(x), origin="lower", interpolation="nearest")
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no windows", ha="center", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_field(data: np.ndarray, boxes: np.ndarray, clear: np.ndarray, path, title: str) -> None:
    """Both bands of a field (2, H, W) with catalogue boxes (clear: green, others: red)."""
    fig, axes = plt.subplots(2, 1, figsize=(10, 2 * 10 * data.shape[1] / data.shape[2] + 0.8))
    for ax, img, name in zip(axes, data, ("24 µm", "8 µm"), strict=True):
        finite = img[np.isfinite(img)]
        lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0, 1)
        ax.imshow(img, origin="lower", cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        for b, c in zip(np.asarray(boxes).reshape(-1, 4), clear, strict=True):
            ax.add_patch(
                Rectangle(
                    (b[0] - 0.5, b[1] - 0.5),
                    b[2] - b[0],
                    b[3] - b[1],
                    fill=False,
                    lw=0.8,
                    ec="lime" if c else "red",
                )
            )
        ax.set_title(f"{title} — {name}", fontsize=9)
        ax.set_xlabel("x [pixel]")
        ax.set_ylabel("y [pixel]")
    fig.tight_layout()
    _save(fig, path)
