"""Figures of the cluster detection stage: sky map, per-patch panels, completeness, comparison."""

from __future__ import annotations

import healpy as hp
import matplotlib

from skydetect.io.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

CLASS_STYLE = {
    "known": {"color": "tab:blue", "marker": "o"},
    "new": {"color": "tab:red", "marker": "*"},
    "spurious": {"color": "tab:orange", "marker": "x"},
}
CURVE_LABELS = {"SNR": "true S/N", "M500": r"$M_{500}$ [$10^{14}\,M_\odot$]", "Z": "redshift z"}


def save_figure(fig, path) -> None:
    """Save ``fig`` as PNG through a temporary file in the same directory."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def _moll_xy(glon, glat):
    """Matplotlib mollweide coordinates (radians), l increasing to the left, l = 0 centred."""
    lon = -np.radians(((np.asarray(glon, float) + 180.0) % 360.0) - 180.0)
    return lon, np.radians(np.asarray(glat, float))


def plot_sky_map(candidates: Table, tiles, path, truth: Table | None = None, title: str = ""):
    """Mollweide map of the candidates (coloured by CLASS) over the searched tiles, and a zoom."""
    fig = plt.figure(figsize=(13, 5))
    ax = fig.add_subplot(1, 2, 1, projection="mollweide")
    zoom = fig.add_subplot(1, 2, 2)
    nside = 32
    pix = np.flatnonzero(
        np.isin(hp.ang2pix(2, *hp.pix2ang(nside, np.arange(12 * nside**2))), tiles)
    )
    plon, plat = hp.pix2ang(nside, pix, lonlat=True)
    ax.scatter(*_moll_xy(plon, plat), s=2, c="0.85", marker="s", lw=0, label="searched")
    if truth is not None and len(truth):
        t = truth[np.asarray(truth["SNR"]) > 4.5]
        for a, (x, y) in ((ax, _moll_xy(t["GLON"], t["GLAT"])), (zoom, (t["GLON"], t["GLAT"]))):
            a.scatter(
                x, y, s=40, facecolors="none", edgecolors="k", lw=0.7, label="true, S/N > 4.5"
            )
    for cls, style in CLASS_STYLE.items():
        sel = candidates[np.asarray(candidates["CLASS"]) == cls] if len(candidates) else []
        n = len(sel)
        if not n:
            continue
        label = f"{cls} ({n})"
        ax.scatter(*_moll_xy(sel["GLON"], sel["GLAT"]), s=8, label=label, **style)
        zoom.scatter(sel["GLON"], sel["GLAT"], s=18, label=label, **style)
    ax.grid(True, lw=0.3)
    ax.set_xticklabels([])
    ax.set_title("Galactic, l = 0 at centre, l increasing to the left", fontsize=9)
    zoom.scatter(plon, plat, s=2, c="0.9", marker="s", lw=0, zorder=0)
    zoom.invert_xaxis()
    zoom.set_xlabel("GLON [deg]")
    zoom.set_ylabel("GLAT [deg]")
    zoom.set_title(f"searched tiles {list(tiles)}", fontsize=9)
    zoom.legend(fontsize=8, loc="best")
    fig.suptitle(title or f"{len(candidates)} cluster candidates")
    save_figure(fig, path)


def plot_completeness(curves: Table, summary: dict, path, run: str = "") -> None:
    """Completeness vs true S/N, M500 and z with binomial errors; headline numbers in title."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, (var, label) in zip(axes, CURVE_LABELS.items(), strict=True):
        c = curves[curves["VARIABLE"] == var] if len(curves) else curves
        if len(c):
            x = 0.5 * (np.asarray(c["BIN_LO"]) + np.asarray(c["BIN_HI"]))
            ax.errorbar(
                x,
                c["COMPLETENESS"],
                yerr=[c["ERR_LO"], c["ERR_HI"]],
                xerr=0.5 * (np.asarray(c["BIN_HI"]) - np.asarray(c["BIN_LO"])),
                fmt="o",
                ms=4,
                capsize=2,
            )
            for xi, n in zip(x, c["N_TRUE"], strict=True):
                ax.annotate(str(int(n)), (xi, 1.02), ha="center", fontsize=7, color="0.4")
            if var in ("SNR", "M500"):
                ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no truth", ha="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylim(-0.02, 1.1)
        ax.grid(True, lw=0.3)
    axes[0].set_ylabel("completeness (numbers: true clusters per bin)")
    title = f"{run}: {summary.get('n_candidates', 0)} candidates"
    t = summary.get("truth")
    if t:
        parts = [f"purity {_fmt(t['purity'])}"]
        parts += [f"C({k}) {_fmt(v)}" for k, v in t["completeness"].items()]
        title += " - " + ", ".join(parts)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def _fmt(d: dict) -> str:
    return "n/a" if d["value"] is None else f"{d['value']:.2f} ({d['k']}/{d['n']})"


def plot_patch_panels(
    inputs, bands, masks, prob, detections_xy, path, titles=None, title: str = ""
) -> None:
    """Rows of patches: each band, the true mask, the probability with the detections marked.

    ``inputs`` (N, S, S, B) normalised, ``masks`` (N, S, S) or None, ``prob`` (N, S, S) (NaN
    where no prediction), ``detections_xy`` a list of (x, y, radius_px) arrays per patch.
    """
    n = len(inputs)
    ncol = len(bands) + 2
    fig, axes = plt.subplots(n, ncol, figsize=(1.7 * ncol, 1.8 * n + 0.4), squeeze=False)
    for i in range(n):
        panels = [(inputs[i, ..., b], f"{bands[b]}", "viridis", None) for b in range(len(bands))]
        m = masks[i] if masks is not None else np.zeros(inputs.shape[1:3])
        panels.append((m, "true mask", "gray", (0, 1)))
        panels.append((prob[i], "probability", "magma", (0, 1)))
        for j, (img, label, cmap, lim) in enumerate(panels):
            ax = axes[i, j]
            vmin, vmax = lim if lim else np.nanpercentile(img, [1, 99])
            ax.imshow(img, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=8)
        for x, y, r in zip(*detections_xy[i], strict=True):
            for ax in axes[i, -2:]:
                ax.add_patch(plt.Circle((x, y), max(r, 2.0), fill=False, ec="cyan", lw=1.0))
        if titles is not None:
            axes[i, 0].set_ylabel(titles[i], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _short(quantity: str) -> str:
    """Column label of a comparison quantity."""
    if quantity.startswith("completeness_snr>"):
        return "C(S/N>" + quantity.split(">", 1)[1] + ")"
    if quantity.startswith("recovered_"):
        return quantity.split("_", 1)[1] + " found"
    return {"n_candidates": "N"}.get(quantity, quantity.removeprefix("n_"))


def plot_comparison(table: Table, path) -> None:
    """Completeness vs true S/N of every run, and a table of purity and headline numbers."""
    fig, (ax, tab) = plt.subplots(2, 1, figsize=(8, 7), gridspec_kw={"height_ratios": [3, 1.3]})
    runs = list(dict.fromkeys(table["RUN"]))
    curve = table[table["QUANTITY"] == "completeness_snr"]
    for k, run in enumerate(runs):
        c = curve[curve["RUN"] == run]
        if not len(c):
            continue
        x = np.sqrt(np.asarray(c["BIN_LO"]).clip(1e-3) * np.asarray(c["BIN_HI"]))
        ax.errorbar(
            x * (1 + 0.02 * k),
            c["VALUE"],
            yerr=[c["ERR_LO"], c["ERR_HI"]],
            fmt="o-",
            ms=4,
            capsize=2,
            label=run,
        )
    ax.set_xscale("log")
    ax.set_xlabel("true S/N")
    ax.set_ylabel("completeness")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(True, lw=0.3)
    if len(curve):
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no truth (real sky)", ha="center", transform=ax.transAxes)
    heads = [q for q in dict.fromkeys(table["QUANTITY"]) if q != "completeness_snr"]
    cells = []
    for run in runs:
        row = [run]
        for q in heads:
            sel = table[(table["RUN"] == run) & (table["QUANTITY"] == q)]
            if not len(sel) or not np.isfinite(sel["VALUE"][0]):
                row.append("-")
            elif q.startswith("n_"):
                row.append(f"{int(sel['VALUE'][0])}")
            else:
                row.append(f"{sel['VALUE'][0]:.3f} ({sel['N_DETECTED'][0]}/{sel['N_TRUE'][0]})")
        cells.append(row)
    tab.axis("off")
    if cells:
        labels = ["run", *(_short(q) for q in heads)]
        t = tab.table(cellText=cells, colLabels=labels, loc="center", cellLoc="center")
        t.auto_set_font_size(False)
        t.set_fontsize(7)
        t.scale(1, 1.4)
    fig.suptitle("Cluster detectors on the same sky", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def select_patches(score, glon, glat, n: int, min_sep_deg: float) -> list[int]:
    """Indices of up to ``n`` patches of highest ``score`` (> 0), centres at least
    ``min_sep_deg`` apart (so that the panels show different clusters); padded with the
    highest-scoring remaining patches when fewer qualify."""
    order = np.argsort(-np.asarray(score, float), kind="stable")
    vec = hp.ang2vec(np.asarray(glon, float), np.asarray(glat, float), lonlat=True)
    chosen: list[int] = []
    cos_min = np.cos(np.radians(min_sep_deg))
    for i in order:
        if len(chosen) == n or score[i] <= 0:
            break
        if all(vec[i] @ vec[j] < cos_min for j in chosen):
            chosen.append(int(i))
    for i in order:
        if len(chosen) >= min(n, len(order)):
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return chosen


def _best_c(c: Table) -> float:
    """Highest completeness at purity >= 0.9 along a curve (-1 if never)."""
    ok = np.asarray(c["PURITY"]) >= 0.9
    return float(np.max(np.asarray(c["C_SNR45"])[ok])) if ok.any() else -1.0


def plot_purity_completeness(curves: Table, bins: Table, scorecard: Table, path) -> None:
    """Left: purity against completeness (truth S/N > 4.5) along each detector's threshold
    sweep on test (combined: the best MMF threshold's curve), the validation-fixed
    thresholds and purity 0.90. Right: completeness per truth-S/N bin at the fixed threshold."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    for k, row in enumerate(scorecard):
        name = str(row["DETECTOR"])
        c = curves[curves["DETECTOR"] == name]
        color = f"C{k}"
        if name == "combined" and len(c):
            mt = np.unique(np.asarray(c["THRESHOLD_MMF"]))
            best = mt[int(np.argmax([_best_c(c[c["THRESHOLD_MMF"] == t]) for t in mt]))]
            c = c[c["THRESHOLD_MMF"] == best]
            name = f"combined (MMF S/N >= {best:g})"
        ax.plot(c["C_SNR45"], c["PURITY"], "-", color=color, lw=1.2, label=name)
        ax.plot(row["C_SNR45"], row["PURITY"], "o", color=color, ms=6)
        if np.isfinite(row["C_SNR45_AT_P90"]):
            ax.errorbar(row["C_SNR45_AT_P90"], 0.9, color=color, fmt="s", ms=5, capsize=3,
                        xerr=[[row["C_SNR45_AT_P90"] - row["C_SNR45_AT_P90_LO"]],
                              [row["C_SNR45_AT_P90_HI"] - row["C_SNR45_AT_P90"]]])  # fmt: skip
        ax.axhline(row["CHANCE_RATE"], color=color, ls=":", lw=0.8)
        b = bins[bins["DETECTOR"] == str(row["DETECTOR"])]
        x = np.sqrt(np.asarray(b["BIN_LO"]) * np.asarray(b["BIN_HI"]))
        bx.plot(x, b["COMPLETENESS"], "o-", color=color, ms=4, label=str(row["DETECTOR"]))
    ax.axhline(0.9, color="0.3", ls="--", lw=0.8)
    ax.set_xlabel("completeness, truth S/N > 4.5")
    ax.set_ylabel("purity")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, lw=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("test threshold sweep (dots: validation-fixed threshold; squares: where the\n"
                 "test sweep reaches purity 0.90; dotted: chance rate)", fontsize=9)  # fmt: skip
    if len(bins):
        b0 = bins[bins["DETECTOR"] == bins["DETECTOR"][0]]
        x = np.sqrt(np.asarray(b0["BIN_LO"]) * np.asarray(b0["BIN_HI"]))
        for xi, n in zip(x, b0["N_TRUE"], strict=True):
            bx.annotate(str(int(n)), (xi, 1.03), ha="center", fontsize=7, color="0.4")
    bx.set_xscale("log")
    ticks = [2, 3, 4.5, 6, 10, 20, 50]
    bx.set_xticks(ticks, [f"{t:g}" for t in ticks])
    bx.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    bx.set_xlabel("truth S/N (six-channel matched filter)")
    bx.set_ylabel("completeness at the validation-fixed threshold")
    bx.set_ylim(-0.02, 1.1)
    bx.grid(True, lw=0.3)
    bx.legend(fontsize=8)
    save_figure(fig, path)


def plot_completeness_mass_z(curves: Table, path) -> None:
    """Completeness of every detector on the test tiles at its validation-fixed threshold,
    per bin of M500 (left) and of z (right), with Wilson 68 % intervals
    (:func:`skydetect.clusters.scorecard_table.mass_z_completeness`)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(dict.fromkeys(str(d) for d in curves["DETECTOR"]))
    for ax, var in zip(axes, ("M500", "Z"), strict=True):
        for k, name in enumerate(names):
            c = curves[(curves["DETECTOR"] == name) & (curves["VARIABLE"] == var)]
            x = 0.5 * (np.asarray(c["BIN_LO"], float) + np.asarray(c["BIN_HI"], float))
            ax.errorbar(x + 0.01 * k * (x[-1] - x[0] if len(x) else 0), c["COMPLETENESS"],
                        yerr=[c["ERR_LO"], c["ERR_HI"]], fmt="o-", ms=4, capsize=2,
                        color=f"C{k}", label=name)  # fmt: skip
        ax.set_xlabel(CURVE_LABELS[var])
        ax.set_ylabel("completeness at the validation-fixed threshold")
        ax.set_ylim(-0.02, 1.05)
        ax.grid(True, lw=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Test tiles: true clusters above the detectability floor", fontsize=10)
    save_figure(fig, path)
