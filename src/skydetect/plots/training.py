"""Learning curves of a segmentation training run (from its CSV history)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

from skydetect.io.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

PANELS = (("loss", "loss"), ("dice", "Dice"), ("precision", "precision"), ("recall", "recall"))


def read_history_columns(path: str | Path) -> dict[str, list[float]]:
    """Columns of a Keras ``CSVLogger`` file as lists of floats."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: empty training history")
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def plot_learning_curve(history_csv: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Loss, Dice, precision and recall per epoch, training and validation (PNG, atomic)."""
    cols = read_history_columns(history_csv)
    if "epoch" not in cols:
        raise ValueError(f"{history_csv}: no 'epoch' column")
    epoch = [int(e) + 1 for e in cols["epoch"]]
    fig, axes = plt.subplots(
        1, len(PANELS), figsize=(4 * len(PANELS), 3.4), constrained_layout=True
    )
    for ax, (key, label) in zip(axes, PANELS, strict=True):
        for prefix, style, name in (("", "-", "training"), ("val_", "--", "validation")):
            if prefix + key in cols:
                ax.plot(epoch, cols[prefix + key], style, marker="o", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label)
        if key == "loss":
            best = min(range(len(epoch)), key=lambda i: cols.get("val_loss", cols["loss"])[i])
            ax.axvline(
                epoch[best], color="0.6", lw=0.8, ls=":", label=f"best (epoch {epoch[best]})"
            )
        else:
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out_png
