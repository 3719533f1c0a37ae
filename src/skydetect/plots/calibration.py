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
    with the diagonal of perfect calibration. The legend gives each detector's ECE with its
    95 % interval, the ECE a perfectly calibrated P(real) would show on the same candidates, N and
    what moves a calibration off the diagonal as a whole: the fraction of true candidates on
    test against that among the candidates it was fitted on, and the mean P(real) on test."""
    fig, ax = plt.subplots(figsize=(6.0, 6.0))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    rows = {str(r["DETECTOR"]): r for r in summary}
    for detector, curve in curves.items():
        r = rows.get(detector)
        label = detector
        if r is not None:
            label += (f": ECE {float(r['ECE']):.3f} [{float(r['ECE_LO95']):.3f}, "
                      f"{float(r['ECE_HI95']):.3f}] (calibrated: "
                      f"{float(r['ECE_CALIBRATED']):.3f}), N {int(r['N'])}"
                      f"\n  true {float(r['TRUE_FRACTION']):.2f} on test, "
                      f"{float(r['TRUE_FRACTION_FIT']):.2f} where fitted; "
                      f"mean P {float(r['MEAN_P_REAL']):.2f}")  # fmt: skip
        ax.plot(curve["P_MEAN"], curve["TRUE_FRACTION"], marker="o", ms=4, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean calibrated P(real) in the bin")
    ax.set_ylabel("fraction of true candidates in the bin")
    ax.set_title("Reliability of P(real), test candidates (equal-count bins)", fontsize=10)
    ax.text(0.02, 0.98, "A change in the fraction of true candidates between the fitted\n"
            "(validation) and the test candidates moves a whole curve off the\n"
            "diagonal: compare 'on test' with 'where fitted' in the legend.",
            transform=ax.transAxes, va="top", fontsize=7, color="0.3")  # fmt: skip
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)
