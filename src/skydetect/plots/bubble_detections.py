"""Figures of the bubble detector: learning curve and detections drawn on a field."""

from __future__ import annotations

import matplotlib

from skydetect.io.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_learning_curve(history: list[dict], path, title: str = "") -> None:
    """Training loss and validation F2 / precision / recall per epoch."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ep = [r["epoch"] for r in history]
    for key, label in [
        ("loss", "total"),
        ("loc_loss", "smooth-L1"),
        ("conf_loss", "cross-entropy"),
    ]:
        a1.plot(ep, [r[key] for r in history], marker="o", label=label)
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    a1.legend()
    for key, label in [("val_f2", "F2"), ("val_precision", "precision"), ("val_recall", "recall")]:
        a2.plot(ep, [r[key] for r in history], marker="o", label=label)
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation (best threshold)")
    a2.set_ylim(-0.02, 1.02)
    a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def _stretch(img: np.ndarray) -> np.ndarray:
    finite = img[np.isfinite(img)]
    if finite.size == 0:
        return np.zeros_like(img)
    lo, hi = np.percentile(finite, [1, 99.5])
    return np.clip((np.nan_to_num(img, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1)


def plot_field_detections(
    data,
    boxes,
    scores,
    path,
    truth=None,
    truth_clear=None,
    title: str = "",
    max_pixels: int = 1500,
    max_boxes: int = 300,
    max_labels: int = 60,
) -> None:
    """Both bands as a colour image (red 24 µm, green 8 µm) with detections (cyan, score)
    and catalogue boxes (clear: white dashed, others: grey dotted). Boxes are field pixel
    corners; the image is shown in pixel-edge coordinates so boxes sit exactly. Only the
    ``max_boxes`` best detections are drawn, the ``max_labels`` best with their score."""
    data = np.asarray(data, dtype=np.float64)
    h, w = data.shape[1:]
    step = max(1, int(np.ceil(max(h, w) / max_pixels)))
    rgb = np.zeros((len(range(0, h, step)), len(range(0, w, step)), 3))
    rgb[..., 0] = _stretch(data[0, ::step, ::step])
    rgb[..., 1] = _stretch(data[1, ::step, ::step])
    rgb[..., 2] = 0.5 * rgb[..., 1]
    fig, ax = plt.subplots(figsize=(10, 10 * h / w + 0.6))
    ax.imshow(rgb, origin="lower", extent=(0, w, 0, h), interpolation="nearest")
    if truth is not None:
        truth = np.asarray(truth).reshape(-1, 4)
        clear = np.ones(len(truth), bool) if truth_clear is None else np.asarray(truth_clear)
        for b, c in zip(truth, clear, strict=True):
            ax.add_patch(
                Rectangle(
                    b[:2],
                    b[2] - b[0],
                    b[3] - b[1],
                    fill=False,
                    ec="white" if c else "0.6",
                    ls="--" if c else ":",
                    lw=0.8,
                )
            )
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")[:max_boxes]
    for rank, i in enumerate(order):
        b = boxes[i]
        ax.add_patch(Rectangle(b[:2], b[2] - b[0], b[3] - b[1], fill=False, ec="cyan", lw=1))
        if rank < max_labels:
            ax.text(b[0], b[3], f"{scores[i]:.2f}", color="cyan", fontsize=6, va="bottom")
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.set_xlabel("x [pixel] (l decreasing)")
    ax.set_ylabel("y [pixel] (b increasing)")
    ax.set_title(title or f"{len(boxes)} detections")
    fig.tight_layout()
    _save(fig, path)


def plot_survey(glon, glat, maj_arcmin, known, path, title: str = "", bin_deg: float = 1.0):
    """Detections along the plane: counts per ``bin_deg`` of l (known / new stacked) above
    their positions in (l, b), marker size ~ MajAxis; l increases to the left."""
    glon = np.asarray(glon, float)
    glat = np.asarray(glat, float)
    known = np.asarray(known, bool)
    size = 4 + 6 * np.sqrt(np.asarray(maj_arcmin, float))
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(12, 5), sharex=True, gridspec_kw={"height_ratios": [1, 1.3]}
    )
    if glon.size:
        lo = np.floor(glon.min() / bin_deg) * bin_deg
        hi = np.ceil(glon.max() / bin_deg) * bin_deg + bin_deg
        bins = np.arange(lo, hi + bin_deg / 2, bin_deg)
        ax1.hist(
            [glon[known], glon[~known]],
            bins=bins,
            stacked=True,
            color=["0.5", "tab:red"],
            label=[f"known (MWP): {known.sum()}", f"new: {(~known).sum()}"],
        )
        ax2.scatter(glon[known], glat[known], s=size[known], c="0.5", lw=0)
        ax2.scatter(glon[~known], glat[~known], s=size[~known], c="tab:red", lw=0)
        ax1.legend(loc="upper right", fontsize=8)
        ax2.set_xlim(hi, lo)
    ax1.set_ylabel(f"detections per {bin_deg:g}°")
    ax2.set_xlabel("Galactic longitude l [deg]")
    ax2.set_ylabel("b [deg]")
    ax1.set_title(title or f"{glon.size} bubbles")
    fig.tight_layout()
    _save(fig, path)
