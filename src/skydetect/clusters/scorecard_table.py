"""The scorecard table and its Markdown: every detector on the same truth, tiles and rules
(:mod:`skydetect.clusters.scorecard`)."""

from __future__ import annotations

import math

import numpy as np
from astropy.table import Table, vstack

from skydetect.clusters import heldout as H
from skydetect.clusters import scorecard as S
from skydetect.clusters.evaluate import DEFAULT_BINS, completeness_curve, in_tiles, match_radius

SNR_BINS = [2.0, 3.0, 4.0, 4.5, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0, 100.0]
DETECTOR_ORDER = ("unet_hfi", "unet_hfi_y", "mmf", "combined")


def area_truth(truth: Table, tiles, min_truth_snr: float) -> Table:
    """The true clusters inside ``tiles`` at or above the detectability floor."""
    t = truth[in_tiles(truth["GLON"], truth["GLAT"], tiles)]
    return t[np.asarray(t["SNR"], float) >= min_truth_snr]


HELDOUT_COLUMNS = [
    "THRESHOLD_VAL", "PURITY_TEST", "N_TRUE_AT_P90", "N_TRUE_AT_P90_LO", "N_TRUE_AT_P90_HI",
    "DELTA_MMF", "DELTA_MMF_LO95", "DELTA_MMF_HI95",
]  # fmt: skip


def sweep_grids(cfg: dict) -> dict[str, np.ndarray]:
    """The threshold grids of the sweeps (``unet_thresholds`` / ``mmf_thresholds`` or the
    defaults from the detection thresholds)."""
    return {
        "unet": np.asarray(
            cfg.get("unet_thresholds") or S.default_grid("unet", cfg["unet_detect_threshold"])
        ),
        "mmf": np.asarray(
            cfg.get("mmf_thresholds") or S.default_grid("mmf", cfg["mmf_snr_threshold"])
        ),
    }


def area_radius(truth: Table, cfg: dict) -> np.ndarray:
    return match_radius(
        truth, cfg["theta500_scale"], cfg["min_radius_arcmin"], cfg["max_radius_arcmin"]
    )


def build_scorecard(
    candidates: dict[str, Table], truth: Table, tiles, cfg: dict, thresholds: dict,
    seed: int = 0,
) -> tuple[Table, Table, Table, dict]:  # fmt: skip
    """(scorecard, sweep curves, completeness per truth-S/N bin, the area's true clusters with
    a ``DETECTED_<detector>`` column each at the fixed thresholds).

    ``candidates``: detector name -> candidate table of the test tiles (U-Net runs score on
    ``PEAK_PROB``, ``mmf`` on ``SNR``, ``combined`` on both). ``cfg``: ``clusters.evaluate``
    plus ``unet_detect_threshold`` and ``mmf_snr_threshold`` (the lowest sweep thresholds).
    ``thresholds``: the validation-fixed thresholds (results/evaluation/thresholds.json,
    :func:`skydetect.clusters.heldout.choose_thresholds`): every operating-point column is
    scored there, once; intervals from one spatial block bootstrap shared by all detectors.
    """
    truth = area_truth(truth, tiles, cfg["min_truth_snr"])
    radius = area_radius(truth, cfg)
    grids = sweep_grids(cfg)
    rng = np.random.default_rng([int(seed), 12, 8])
    blocks = H.area_blocks(tiles)
    draws = H.block_draws(len(blocks), int(cfg["n_bootstrap"]), rng)
    wt = H.block_weights(draws, H.block_index(truth, blocks, "truth"))
    rows, curves, bins, boot, detected = [], [], [], {}, {}
    for name, cand in candidates.items():
        cand = cand[in_tiles(cand["GLON"], cand["GLAT"], tiles)] if len(cand) else cand
        kind = "combined" if name == "combined" else ("mmf" if name == "mmf" else "unet")
        wc = H.block_weights(draws, H.block_index(cand, blocks, name))
        row, cur = S.score_detector(
            name, cand, truth, radius, tiles, H.operating_point(thresholds, name),
            grids["unet"] if kind != "mmf" else grids["mmf"],
            grids["mmf"] if kind == "combined" else None,
            target=cfg["purity_target"], n_scramble=cfg["n_scramble"], seed=seed,
            weights=(wc, wt),
        )  # fmt: skip
        detected[name] = row.pop("detected_nominal")
        boot[name] = row.pop("n_true_boot")
        row.pop("c45_boot")
        op = H.operating_point(thresholds, name)
        row["THRESHOLD_VAL"] = op[0] if kind == "combined" else op
        row["PURITY_TEST"] = row["PURITY"]
        row["N_TRUE_AT_P90_LO"], row["N_TRUE_AT_P90_HI"] = H.interval(boot[name], 0.68)
        rows.append(row)
        curves.append(cur)
        bins.append(_snr_bins(name, truth, detected[name]))
    _add_deltas(rows, boot)
    table = Table(rows=rows, names=list(rows[0]))
    first = S.SCORECARD_COLUMNS + HELDOUT_COLUMNS
    table = table[first + [c for c in table.colnames if c not in first]]
    table = table[sorted(range(len(table)), key=lambda i: _rank(table["DETECTOR"][i]))]
    table.meta.update(
        {
            "tiles": [int(t) for t in tiles],
            "min_truth_snr": float(cfg["min_truth_snr"]),
            "n_truth_detectable": len(truth),
            "purity_target": float(cfg["purity_target"]),
            "thresholds": thresholds,
            "n_bootstrap": int(cfg["n_bootstrap"]),
            "bootstrap_blocks": {"nside": H.BLOCK_NSIDE, "n": len(blocks)},
            "n_scramble": int(cfg["n_scramble"]),
            "missed_snr6": {n: _missed(truth, d) for n, d in detected.items()},
        }
    )
    found = truth[[c for c in ("ID", "GLON", "GLAT", "M500", "Z", "SNR") if c in truth.colnames]]
    for name, det in detected.items():
        found[f"DETECTED_{name}"] = np.asarray(det, bool)
    return table, vstack(curves), vstack(bins), found


def _add_deltas(rows: list[dict], boot: dict) -> None:
    """DELTA_MMF (and its paired 95 % interval) of every row; NaN without an MMF row."""
    n = {r["DETECTOR"]: r["N_TRUE_AT_P90"] for r in rows}
    for r in rows:
        if "mmf" not in boot:
            r["DELTA_MMF"], r["DELTA_MMF_LO95"], r["DELTA_MMF_HI95"] = (np.nan,) * 3
            continue
        r["DELTA_MMF"] = float(n[r["DETECTOR"]] - n["mmf"])
        lo, hi = H.paired_difference(boot[r["DETECTOR"]], boot["mmf"], 0.95)
        r["DELTA_MMF_LO95"], r["DELTA_MMF_HI95"] = lo, hi


def _snr_bins(name: str, truth: Table, det: np.ndarray) -> Table:
    snr = np.asarray(truth["SNR"], float)
    n_true = np.histogram(snr, SNR_BINS)[0]
    n_det = np.histogram(snr[det], SNR_BINS)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = n_det / n_true
    return Table({"DETECTOR": [name] * len(n_true), "BIN_LO": SNR_BINS[:-1],
                  "BIN_HI": SNR_BINS[1:], "N_TRUE": n_true, "N_DETECTED": n_det,
                  "COMPLETENESS": frac})  # fmt: skip


def _missed(truth: Table, det: np.ndarray) -> dict:
    """Clusters of truth S/N > 6 missed at the operating point."""
    snr = np.asarray(truth["SNR"], float)
    lost = (snr > 6.0) & ~det
    theta = np.asarray(truth["THETA500"], float)[lost]
    return {
        "n": int(lost.sum()),
        "of": int((snr > 6.0).sum()),
        "theta500_median": float(np.median(theta)) if lost.any() else float("nan"),
        "theta500_max": float(np.max(theta)) if lost.any() else float("nan"),
        "snr_max": float(np.max(snr[lost])) if lost.any() else float("nan"),
    }


def mass_z_completeness(found: Table, bins: dict | None = None) -> Table:
    """Completeness of every detector per bin of M500 and of z (Wilson 68 % intervals) from
    the truth table with its ``DETECTED_<detector>`` columns (:func:`build_scorecard`);
    ``bins``: {"M500": edges, "Z": edges} (default: the evaluation's)."""
    bins = {**DEFAULT_BINS, **(bins or {})}
    out = []
    for col in [c for c in found.colnames if c.startswith("DETECTED_")]:
        name, det = col[len("DETECTED_") :], np.asarray(found[col], bool)
        truth = found
        for var in ("M500", "Z"):
            t = completeness_curve(np.asarray(truth[var], float), det, bins[var], var)
            t.add_column([name] * len(t), name="DETECTOR", index=0)
            out.append(t)
    return vstack(out)


def _rank(name: str) -> tuple[int, str]:
    name = str(name)
    return (DETECTOR_ORDER.index(name) if name in DETECTOR_ORDER else len(DETECTOR_ORDER), name)


def _f(x, fmt="{:.3f}") -> str:
    x = float(x)
    return "–" if math.isnan(x) else fmt.format(x)


def _threshold(row, thresholds: dict) -> str:
    name = str(row["DETECTOR"])
    entry = thresholds.get(name, {})
    if name == "combined":
        a, b, c = (entry.get(k) for k in ("unet_threshold", "mmf_threshold", "unet_min_snr"))
        if a is None or b is None:
            return "–"
        if c is None:
            return f"P >= {a:g} or S/N >= {b:g}"
        return f"S/N >= {b:g}, or P >= {a:g} and S/N >= {c:g}"
    return _f(row["THRESHOLD_VAL"], "{:g}")


def _explanation(table: Table) -> str:
    """What the scorecard's numbers mean (one paragraph)."""
    m = table.meta
    n45 = int(table["N_TRUE_SNR45"][0]) if len(table) else 0
    n6 = int(table["N_TRUE_SNR6"][0]) if len(table) else 0
    return (
        f"Test tiles {m.get('tiles')} (nside-2 RING); {m.get('n_truth_detectable')} true "
        f"clusters above the detectability floor (truth S/N >= {m.get('min_truth_snr')}), "
        f"{n45} with S/N > 4.5 and {n6} with S/N > 6. Every threshold is fixed on the "
        f"validation tiles (results/evaluation/thresholds.json): the lowest reaching purity "
        f"{m.get('purity_target')} there (combined: the MMF S/N, and the U-Net probability "
        "with the MMF S/N it also needs, if any, with the most true clusters at that purity); "
        "the test tiles are scored once at it: N_CAND, purity, "
        "chance rate (as many candidates at random positions in the test tiles, "
        f"{m.get('n_scramble')} draws), completeness and N true (true clusters in the "
        "catalogue). Matching one-to-one in order of truth S/N. Intervals: "
        f"{m.get('n_bootstrap')} spatial block-bootstrap resamples (nside-8 HEALPix blocks of "
        "the test area, candidates and clusters together; the differences to the MMF paired "
        "on the same draws). Last column, description only: completeness where the test "
        "sweep itself first reaches purity 0.90 (a threshold tuned on test; combined: over the "
        "U-Net and MMF grids at the validation's confirming S/N); '–': never."
        + _mask_sentence(m.get("mask_policy"))
    )


def _mask_sentence(policy) -> str:
    """How the Galactic and point-source masks (clusters.mask_candidates) were used."""
    if policy is None:
        return ""
    done = "flag" if policy == "flag" else "drop"
    return (
        f" Masks (clusters.mask_candidates: {policy}): the scorecard counts every candidate of "
        f"the test tiles; the catalogues in results/catalogs/ {done} those inside the "
        "Galactic or point-source mask (MASK_GAL, MASK_PS)."
    )


def scorecard_markdown(table: Table, command: str) -> str:
    """The scorecard as a Markdown table with what it means, and the command behind it."""
    m = table.meta
    thresholds = m.get("thresholds", {})
    lines = [
        "| detector | threshold (validation) | N_CAND | purity, test (68 %) | chance rate "
        "| C(S/N>4.5) | C(S/N>6) | N true at P 0.90 (68 %) | minus MMF (95 %) "
        "| C(S/N>4.5) at P 0.90, test-tuned (68 %) |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in table:
        lines.append(
            f"| {r['DETECTOR']} | {_threshold(r, thresholds)} | {r['N_CAND']} "
            f"| {_f(r['PURITY_TEST'])} [{_f(r['PURITY_LO'])}, {_f(r['PURITY_HI'])}] "
            f"| {_f(r['CHANCE_RATE'])} | {_f(r['C_SNR45'])} | {_f(r['C_SNR6'])} "
            f"| {r['N_TRUE_AT_P90']} [{_f(r['N_TRUE_AT_P90_LO'], '{:.0f}')}, "
            f"{_f(r['N_TRUE_AT_P90_HI'], '{:.0f}')}] "
            f"| {_f(r['DELTA_MMF'], '{:+.0f}')} [{_f(r['DELTA_MMF_LO95'], '{:+.0f}')}, "
            f"{_f(r['DELTA_MMF_HI95'], '{:+.0f}')}] "
            f"| {_f(r['C_SNR45_AT_P90'])} [{_f(r['C_SNR45_AT_P90_LO'])}, "
            f"{_f(r['C_SNR45_AT_P90_HI'])}] |"
        )
    lines += ["", _explanation(table)]
    lines += [
        "",
        "Clusters of truth S/N > 6 missed at the validation-fixed thresholds: "
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
