"""The scorecard table and its Markdown: every detector on the same truth, tiles and rules
(:mod:`skydetect.clusters.scorecard`)."""

from __future__ import annotations

import math

import numpy as np
from astropy.table import Table, vstack

from skydetect.clusters import scorecard as S
from skydetect.clusters.evaluate import in_tiles, match_radius

SNR_BINS = [2.0, 3.0, 4.0, 4.5, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0, 100.0]
DETECTOR_ORDER = ("unet_hfi", "unet_hfi_y", "mmf", "combined")


def area_truth(truth: Table, tiles, min_truth_snr: float) -> Table:
    """The true clusters inside ``tiles`` at or above the detectability floor."""
    t = truth[in_tiles(truth["GLON"], truth["GLAT"], tiles)]
    return t[np.asarray(t["SNR"], float) >= min_truth_snr]


def build_scorecard(
    candidates: dict[str, Table], truth: Table, tiles, cfg: dict, seed: int = 0
) -> tuple[Table, Table, Table]:
    """(scorecard, sweep curves, completeness per truth-S/N bin at the operating point).

    ``candidates``: detector name -> candidate table (U-Net runs score on ``PEAK_PROB``, ``mmf``
    on ``SNR``, ``combined`` on both). ``cfg``: ``clusters.evaluate`` plus
    ``unet_detect_threshold`` and ``mmf_snr_threshold`` (the lowest sweep thresholds).
    """
    truth = area_truth(truth, tiles, cfg["min_truth_snr"])
    radius = match_radius(
        truth, cfg["theta500_scale"], cfg["min_radius_arcmin"], cfg["max_radius_arcmin"]
    )
    op = cfg["operating_point"]
    grids = {
        "unet": np.asarray(
            cfg.get("unet_thresholds") or S.default_grid("unet", cfg["unet_detect_threshold"])
        ),
        "mmf": np.asarray(
            cfg.get("mmf_thresholds") or S.default_grid("mmf", cfg["mmf_snr_threshold"])
        ),
    }
    rows, curves, bins, missed = [], [], [], {}
    for name, cand in candidates.items():
        cand = cand[in_tiles(cand["GLON"], cand["GLAT"], tiles)] if len(cand) else cand
        kind = "combined" if name == "combined" else ("mmf" if name == "mmf" else "unet")
        row, cur = S.score_detector(
            name if kind != "unet" else f"{name}",
            cand,
            truth,
            radius,
            tiles,
            (op["unet"], op["mmf"]) if kind == "combined" else op[kind],
            grids["unet"] if kind != "mmf" else grids["mmf"],
            grids["mmf"] if kind == "combined" else None,
            target=cfg["purity_target"],
            n_bootstrap=cfg["n_bootstrap"],
            n_scramble=cfg["n_scramble"],
            seed=seed,
        )
        det = row.pop("detected_nominal")
        rows.append(row)
        curves.append(cur)
        snr = np.asarray(truth["SNR"], float)
        lost = (snr > 6.0) & ~det  # bright clusters missed at the operating point
        theta = np.asarray(truth["THETA500"], float)[lost]
        missed[name] = {
            "n": int(lost.sum()),
            "of": int((snr > 6.0).sum()),
            "theta500_median": float(np.median(theta)) if lost.any() else float("nan"),
            "theta500_max": float(np.max(theta)) if lost.any() else float("nan"),
            "snr_max": float(np.max(snr[lost])) if lost.any() else float("nan"),
        }
        n_true = np.histogram(snr, SNR_BINS)[0]
        n_det = np.histogram(snr[det], SNR_BINS)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = n_det / n_true
        bins.append(Table({"DETECTOR": [name] * len(n_true), "BIN_LO": SNR_BINS[:-1],
                           "BIN_HI": SNR_BINS[1:], "N_TRUE": n_true, "N_DETECTED": n_det,
                           "COMPLETENESS": frac}))  # fmt: skip
    table = Table(rows=rows, names=list(rows[0]))
    order = sorted(range(len(table)), key=lambda i: _rank(table["DETECTOR"][i]))
    table = table[order]
    table.meta.update(
        {
            "tiles": [int(t) for t in tiles],
            "min_truth_snr": float(cfg["min_truth_snr"]),
            "n_truth_detectable": len(truth),
            "purity_target": float(cfg["purity_target"]),
            "operating_point": {k: float(v) for k, v in op.items()},
            "n_bootstrap": int(cfg["n_bootstrap"]),
            "n_scramble": int(cfg["n_scramble"]),
            "missed_snr6": missed,
        }
    )
    return table, vstack(curves), vstack(bins)


def _rank(name: str) -> tuple[int, str]:
    name = str(name)
    return (DETECTOR_ORDER.index(name) if name in DETECTOR_ORDER else len(DETECTOR_ORDER), name)


def _f(x, fmt="{:.3f}") -> str:
    x = float(x)
    return "–" if math.isnan(x) else fmt.format(x)


def scorecard_markdown(table: Table, command: str) -> str:
    """The scorecard as a Markdown table with what it means, and the command behind it."""
    m = table.meta
    op = m.get("operating_point", {})
    lines = [
        "| detector | N_CAND | purity (68 %) | chance rate | C(S/N>4.5) | C(S/N>6) "
        "| C(S/N>4.5) at purity 0.90 (68 %) | threshold at P 0.90 |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in table:
        lines.append(
            f"| {r['DETECTOR']} | {r['N_CAND']} | {_f(r['PURITY'])} "
            f"[{_f(r['PURITY_LO'])}, {_f(r['PURITY_HI'])}] | {_f(r['CHANCE_RATE'])} "
            f"| {_f(r['C_SNR45'])} | {_f(r['C_SNR6'])} | {_f(r['C_SNR45_AT_P90'])} "
            f"[{_f(r['C_SNR45_AT_P90_LO'])}, {_f(r['C_SNR45_AT_P90_HI'])}] "
            f"| {_f(r['THRESHOLD_AT_P90'])} |"
        )
    n45 = int(table["N_TRUE_SNR45"][0]) if len(table) else 0
    n6 = int(table["N_TRUE_SNR6"][0]) if len(table) else 0
    lines += [
        "",
        f"Test tiles {m.get('tiles')} (nside-2 RING); {m.get('n_truth_detectable')} true "
        f"clusters above the detectability floor (truth S/N >= {m.get('min_truth_snr')}), "
        f"{n45} with S/N > 4.5 and {n6} with S/N > 6. N_CAND, purity, chance rate and "
        f"C(S/N>4.5), C(S/N>6) at the operating point (U-Net probability >= "
        f"{op.get('unet')}, MMF S/N >= {op.get('mmf')}, combined: either). Matching one-to-one "
        "in order of truth S/N; chance rate: the same number of candidates at random positions "
        f"in the test tiles ({m.get('n_scramble')} draws). Completeness at purity 0.90: "
        "interpolated along the threshold sweep (combined: the best MMF threshold, the U-Net "
        f"threshold given); intervals: {m.get('n_bootstrap')} bootstrap resamples of "
        "candidates and clusters; '–': purity 0.90 is never reached.",
        "",
        "Clusters of truth S/N > 6 missed at the operating point: "
        + "; ".join(
            f"{d} {v['n']}/{v['of']}"
            + (f" (theta500 median {v['theta500_median']:.1f}', max {v['theta500_max']:.1f}'; "
               f"S/N up to {v['snr_max']:.1f})" if v["n"] else "")  # fmt: skip
            for d, v in m.get("missed_snr6", {}).items()
        )
        + ".",
        "",
        f"Regenerate: `{command}`",
    ]
    return "\n".join(lines) + "\n"
