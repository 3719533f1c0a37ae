"""Reliability diagram of the calibrated cluster candidates (rule evaluate_calibration)."""

from __future__ import annotations

import matplotlib

from skydetect.plots.detections import save_figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from astropy.table import Table  # noqa: E402


def plot_reliability(curves: dict[str, Table], summary: Table, path) -> None:
    """Observed fraction of true candidates against the mean calibrated P(real), per
    equal-count bin and detector (:func:`skydetect.clusters.calibration.reliability_curve`),
    with the diagonal of perfect calibration; the legend gives each detector's ECE and N."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    ece = {str(r["DETECTOR"]): (float(r["ECE"]), int(r["N"])) for r in summary}
    for detector, curve in curves.items():
        e, n = ece.get(detector, (float("nan"), 0))
        ax.plot(curve["P_MEAN"], curve["TRUE_FRACTION"], marker="o", ms=4,
                label=f"{detector}: ECE {e:.3f}, N {n}")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean calibrated P(real) in the bin")
    ax.set_ylabel("fraction of true candidates in the bin")
    ax.set_title("Reliability of P(real), test candidates (equal-count bins)")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
