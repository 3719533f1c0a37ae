"""Figure of the selection function: completeness per Y5R500 x theta500 cell, per detector."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skydetect.plots.detections import save_figure  # noqa: E402


def plot_selection_function(grid: dict, y_edges, theta_edges, thresholds: dict, path) -> None:
    """One panel per detector: the completeness image over log Y5R500 (x) and log theta500
    (y), each cell annotated with detected / injected and its 68 % Clopper-Pearson interval."""
    dets = list(grid)
    ncol = min(len(dets), 2)
    nrow = int(np.ceil(len(dets) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.0 * ncol, 4.6 * nrow), squeeze=False)
    y_edges, theta_edges = np.asarray(y_edges, float), np.asarray(theta_edges, float)
    for ax, det in zip(axes.ravel(), dets, strict=False):
        g = grid[det]
        im = ax.pcolormesh(y_edges, theta_edges, g["completeness"], cmap="viridis",
                           vmin=0, vmax=1, shading="flat")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel=r"$Y_{5R500}$ [arcmin$^2$]",
               ylabel=r"$\theta_{500}$ [arcmin]")  # fmt: skip
        thr = thresholds[det]
        score = ", ".join(np.atleast_1d(thr["score"]).astype(str))
        value = ", ".join(f"{t:g}" for t in np.atleast_1d(thr["threshold"]))
        ax.set_title(f"{det}: {score} ≥ {value}")
        yc = np.sqrt(y_edges[:-1] * y_edges[1:])
        tc = np.sqrt(theta_edges[:-1] * theta_edges[1:])
        for i, t in enumerate(tc):
            for j, y in enumerate(yc):
                if g["n"][i, j] == 0:
                    continue
                c = g["completeness"][i, j]
                ax.text(y, t, f"{int(g['k'][i, j])}/{int(g['n'][i, j])}\n"
                        f"[{g['lo'][i, j]:.2f}, {g['hi'][i, j]:.2f}]", ha="center",
                        va="center", fontsize=7, color="white" if c < 0.6 else "black")  # fmt: skip
        fig.colorbar(im, ax=ax, label="completeness")
    for ax in axes.ravel()[len(dets):]:
        ax.axis("off")
    fig.suptitle("Selection function from injected clusters")
    fig.tight_layout()
    save_figure(fig, path)
