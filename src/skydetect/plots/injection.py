"""Figure of the injection recall: recall per MajAxis x contrast cell (k / n written in each
cell), and recall against contrast per MajAxis with Clopper-Pearson intervals, the
catalogue's (mock truth's) clear bubbles beside them where given."""

from __future__ import annotations

import matplotlib

from skydetect.io.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_injection(cells, path, title: str = "") -> None:
    """``cells``: the table of :func:`skydetect.bubbles.injection_table.recall_cells`."""
    maj = np.unique(np.asarray(cells["MAJAXIS_ARCMIN"], float))
    con = np.unique(np.asarray(cells["CONTRAST"], float))
    grid = np.asarray(cells["RECALL"], float).reshape(len(maj), len(con))
    k = np.asarray(cells["K"], int).reshape(grid.shape)
    n = np.asarray(cells["N"], int).reshape(grid.shape)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
    im = ax0.imshow(grid, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(len(maj)):
        for j in range(len(con)):
            ax0.text(j, i, f"{k[i, j]}/{n[i, j]}", ha="center", va="center", color="w", fontsize=8)
    ax0.set_xticks(range(len(con)), [f"{c:g}" for c in con])
    ax0.set_yticks(range(len(maj)), [f"{m:g}" for m in maj])
    ax0.set_xlabel("contrast (8 µm ring peak / local median)")
    ax0.set_ylabel("MajAxis (arcmin)")
    fig.colorbar(im, ax=ax0, label="recall of injected bubbles")
    truth = "RECALL_TRUTH" in cells.colnames
    for m in maj:
        sel = np.asarray(cells["MAJAXIS_ARCMIN"], float) == m
        r = np.asarray(cells["RECALL"], float)[sel]
        err = [r - np.asarray(cells["RECALL_LO"])[sel], np.asarray(cells["RECALL_HI"])[sel] - r]
        line = ax1.errorbar(con, r, yerr=err, marker="o", capsize=3, label=f"injected {m:g}'")
        if truth:
            rt = np.asarray(cells["RECALL_TRUTH"], float)[sel]
            ax1.plot(con * 1.04, rt, "s--", color=line[0].get_color(), mfc="none",
                     label=f"catalogue {m:g}'")  # fmt: skip
    ax1.set_xscale("log")
    ax1.set_xticks(con, [f"{c:g}" for c in con])
    ax1.minorticks_off()
    ax1.set_ylim(-0.05, 1.05)
    ax1.set_xlabel("contrast")
    ax1.set_ylabel("recall (95 % Clopper-Pearson)")
    ax1.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
