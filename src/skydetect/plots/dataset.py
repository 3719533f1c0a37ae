"""Example patches of a cluster dataset: every band beside the mask."""

from __future__ import annotations

from pathlib import Path

import h5py
import matplotlib

from skydetect.io.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_examples"]


def plot_examples(dataset_path, out_png, n_examples: int = 4, seed: int = 0) -> int:
    """Write a PNG grid (rows: patches, columns: bands + mask); returns the rows drawn.

    Patches with a non-empty mask are preferred. An empty dataset gives a figure that says so.
    """
    with h5py.File(dataset_path, "r") as f:
        bands = [str(b) for b in f.attrs["bands"]]
        split = str(f.attrs.get("split", ""))
        n = f["inputs"].shape[0]
        pix = float(f.attrs.get("pixel_arcmin", np.nan))
        if n:
            rng = np.random.default_rng([seed, 5])
            has = np.flatnonzero(f["masks"][...].reshape(n, -1).any(axis=1))
            pool = has if has.size >= n_examples else np.arange(n)
            idx = np.sort(rng.choice(pool, size=min(n_examples, pool.size), replace=False))
            x = f["inputs"][idx]
            m = f["masks"][idx]
            glon, glat = f["glon"][idx], f["glat"][idx]
    ncol = len(bands) + 1
    rows = len(idx) if n else 1
    fig, axes = plt.subplots(rows, ncol, figsize=(1.6 * ncol, 1.7 * rows + 0.5), squeeze=False)
    if not n:
        for ax in axes.ravel():
            ax.axis("off")
        axes[0, 0].text(0, 0.5, f"{split}: no patches", transform=axes[0, 0].transAxes)
    else:
        for r in range(rows):
            for c in range(ncol):
                ax = axes[r, c]
                img = m[r] if c == len(bands) else x[r, ..., c]
                vmin, vmax = (0, 1) if c == len(bands) else np.percentile(img, [1, 99])
                ax.imshow(
                    img,
                    origin="lower",
                    cmap="gray" if c == len(bands) else "viridis",
                    vmin=vmin,
                    vmax=vmax,
                    interpolation="nearest",
                )
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title("mask" if c == len(bands) else f"{bands[c]}", fontsize=9)
                if c == 0:
                    ax.set_ylabel(f"l={glon[r]:.1f}\nb={glat[r]:.1f}", fontsize=7)
    fig.suptitle(f"{split} patches ({n} in all, {pix:g}' pixels, normalised)", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return rows
