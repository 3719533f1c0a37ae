"""Held-out operating points and spatial block-bootstrap intervals for the cluster scorecard.

* **Thresholds on validation**: each detector's threshold is the lowest of its sweep grid
  (U-Net ``PEAK_PROB``, MMF ``SNR``) whose purity on the validation tiles reaches the target
  (``clusters.evaluate.purity_target``): along a sweep the number of true clusters only falls
  with the threshold, so this is the most true clusters at that purity. The combined rule
  keeps a candidate with MMF ``SNR >= b``, or with U-Net ``PEAK_PROB >= a`` and MMF
  ``SNR >= c`` (a U-Net detection the MMF confirms at a lower S/N; ``c`` null: the U-Net
  alone, either detector suffices). ``(a, b, c)`` is the triple of the grids (``c``: null
  and the MMF grid) with the most true clusters at purity >= target (ties: higher purity,
  then fewer candidates, then the U-Net alone before a confirmation). Matching as
  in the scorecard, one-to-one in order of truth S/N, redone at every grid point. A detector
  that never reaches the target on validation gets no threshold (``null``): it keeps no
  candidate on test.
* **Test**: scored once, at those thresholds, unchanged.
* **Block bootstrap**: the test area is cut into nside-8 HEALPix pixels (blocks; 16 per
  nside-2 tile); a resample draws as many blocks with replacement, and every candidate and
  true cluster counts as often as its block was drawn. The same draws serve every detector,
  so differences between detectors are paired.
* **Truth flags**: ``IS_TRUE`` / ``TRUTH_ID`` of every candidate from one matching of all the
  candidates (as rule evaluate matches them): a second candidate on an already matched
  cluster is not true.
"""

from __future__ import annotations

import json

import healpy as hp
import numpy as np
from astropy.table import Table

from skydetect.clusters import scorecard as S
from skydetect.clusters.evaluate import in_tiles

BLOCK_NSIDE = 8
TILE_NSIDE = 2


def area_blocks(tiles, nside: int = BLOCK_NSIDE) -> np.ndarray:
    """The nside-``nside`` RING pixels inside the nside-2 RING ``tiles`` (sorted)."""
    tiles = np.asarray(sorted(int(t) for t in tiles), np.int64)
    if tiles.size == 0:
        return np.zeros(0, np.int64)
    sub = (nside // TILE_NSIDE) ** 2
    nest = hp.ring2nest(TILE_NSIDE, tiles)
    children = (nest[:, None] * sub + np.arange(sub)[None, :]).ravel()
    return np.sort(hp.nest2ring(nside, children))


def block_index(table: Table, blocks: np.ndarray, what: str, nside: int = BLOCK_NSIDE):
    """Index into ``blocks`` of each row's nside-``nside`` pixel; a clear error for a row
    outside the blocks."""
    if len(table) == 0:
        return np.zeros(0, np.int64)
    pix = hp.ang2pix(nside, np.asarray(table["GLON"], float), np.asarray(table["GLAT"], float),
                     lonlat=True)  # fmt: skip
    if len(blocks) == 0:
        raise ValueError(f"{what}: {len(pix)} row(s) but no bootstrap block (no tile)")
    k = np.clip(np.searchsorted(blocks, pix), 0, len(blocks) - 1)
    outside = blocks[k] != pix
    if np.any(outside):
        raise ValueError(f"{what}: {int(np.sum(outside))} row(s) outside the bootstrap blocks")
    return k


def block_draws(n_blocks: int, n_bootstrap: int, rng) -> np.ndarray:
    """(n_bootstrap, n_blocks) counts: ``n_blocks`` blocks drawn with replacement."""
    if n_blocks == 0:
        return np.zeros((n_bootstrap, 0))
    return rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=n_bootstrap)


def block_weights(draws: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(B, N) weight of each row: how often its block was drawn."""
    return np.asarray(draws, float)[:, np.asarray(index, np.int64)]


def interval(x, level: float) -> tuple[float, float]:
    """Central ``level`` percentile interval of the finite values of ``x`` (NaN if none)."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    half = 50.0 * (1 - level)
    return float(np.percentile(x, half)), float(np.percentile(x, 100 - half))


def paired_difference(n_a: np.ndarray, n_b: np.ndarray, level: float = 0.95):
    """(lo, hi) of the bootstrap differences ``n_a - n_b`` drawn on the same blocks."""
    return interval(np.asarray(n_a, float) - np.asarray(n_b, float), level)


# ----------------------------------------------------------------------- truth flags
def truth_flags(cand: Table, truth: Table, radius) -> tuple[np.ndarray, np.ndarray]:
    """(IS_TRUE, TRUTH_ID) of every candidate: one matching of all candidates against the
    truth (one-to-one, in order of truth S/N, within each cluster's ``radius``)."""
    cv = S.unit_vectors(cand, "candidates") if len(cand) else np.zeros((0, 3))
    tv = S.unit_vectors(truth, "truth") if len(truth) else np.zeros((0, 3))
    c, _ = S.Matcher(cv, tv, np.asarray(truth["SNR"], float), radius).match()
    ids = np.asarray(truth["ID"]) if "ID" in truth.colnames else np.arange(len(truth))
    truth_id = np.where(c >= 0, ids[np.maximum(c, 0)] if len(ids) else -1, -1)
    return c >= 0, truth_id.astype(np.int64)


def matched_candidates(cand: Table, truth: Table, radius) -> Table:
    """The candidate table's position and score columns with ``IS_TRUE`` and ``TRUTH_ID``."""
    cols = [c for c in ("GLON", "GLAT", "PEAK_PROB", "SNR", "DETECTORS") if c in cand.colnames]
    out = Table(cand[cols], copy=True) if len(cols) else Table()
    out.meta = {k: v for k, v in cand.meta.items() if k in ("RUN", "UNET_RUN")}
    is_true, truth_id = truth_flags(cand, truth, radius)
    out["IS_TRUE"] = np.asarray(is_true, bool)
    out["TRUTH_ID"] = truth_id
    return out


# ----------------------------------------------------------------------- thresholds
def _counts(cand: Table, truth: Table, radius, keep: np.ndarray):
    """(n kept, n true) for each row of ``keep`` (matching redone once per distinct row)."""
    cv = S.unit_vectors(cand, "candidates") if len(cand) else np.zeros((0, 3))
    m = S.Matcher(cv, S.unit_vectors(truth, "truth"), np.asarray(truth["SNR"], float), radius)
    rows, inverse = np.unique(keep, axis=0, return_inverse=True)
    cand_true, _ = S.sweep(m, rows)
    return keep.sum(axis=1), cand_true.sum(axis=1)[inverse.ravel()]


def _purity(n_kept, n_true) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_kept > 0, n_true / np.maximum(n_kept, 1), np.nan)


def threshold_at_purity(cand: Table, truth: Table, radius, column: str, grid, target: float):
    """``{"score", "threshold", "purity_val", "n_true_val"}``: the lowest threshold of the
    ascending ``grid`` on ``column`` whose purity reaches ``target`` (None if none does)."""
    grid = np.sort(np.asarray(grid, float))
    if column not in cand.colnames:
        raise ValueError(f"candidate table has no column {column!r} to threshold on")
    s = np.nan_to_num(np.asarray(cand[column], float), nan=-np.inf)
    keep = s[None, :] >= grid[:, None]
    n_kept, n_true = _counts(cand, truth, radius, keep)
    purity = _purity(n_kept, n_true)
    ok = np.flatnonzero(np.nan_to_num(purity, nan=-1.0) >= target)
    out = {"score": column, "threshold": None, "purity_val": None, "n_true_val": 0}
    if ok.size:
        k = int(ok[0])
        out.update(threshold=float(grid[k]), purity_val=float(purity[k]), n_true_val=int(n_true[k]))
    return out


def combined_rule(cand: Table, truth: Table, radius, unet_grid, mmf_grid, target: float):
    """``{"unet_threshold", "mmf_threshold", "unet_min_snr", "purity_val", "n_true_val"}``:
    the triple (a, b, c) of the grids whose rule ``SNR >= b or (PEAK_PROB >= a and SNR >= c)``
    keeps the most true clusters at purity >= ``target`` (``c`` from None, the U-Net alone,
    and ``mmf_grid``; ties: higher purity, then fewer candidates, then the smaller ``c``);
    None where none does."""
    ug = np.asarray(unet_grid, float)
    mg = np.asarray(mmf_grid, float)
    cg = np.concatenate([[-np.inf], mg])
    keep = (
        np.vstack([S.threshold_mask(cand, "combined", ug, mg, c) for c in cg])
        if len(cand)
        else np.zeros((cg.size * ug.size * mg.size, 0), bool)
    )
    n_kept, n_true = _counts(cand, truth, radius, keep)
    purity = _purity(n_kept, n_true)
    out = {"unet_threshold": None, "mmf_threshold": None, "unet_min_snr": None,
           "purity_val": None, "n_true_val": 0}  # fmt: skip
    ok = np.flatnonzero(np.nan_to_num(purity, nan=-1.0) >= target)
    if ok.size:
        best = int(ok[np.lexsort((ok, n_kept[ok], -purity[ok], -n_true[ok]))[0]])
        c, k = divmod(best, ug.size * mg.size)
        out.update(
            unet_threshold=float(ug[k % ug.size]), mmf_threshold=float(mg[k // ug.size]),
            unet_min_snr=None if c == 0 else float(cg[c]),
            purity_val=float(purity[best]), n_true_val=int(n_true[best]),
        )  # fmt: skip
    return out


def choose_thresholds(candidates: dict[str, Table], truth: Table, radius, tiles, grids: dict,
                      target: float, unet_run: str | None = None) -> dict:  # fmt: skip
    """Every detector's validation threshold (the layout of results/evaluation/thresholds.json).

    ``candidates``: detector -> candidate table on the validation tiles (``combined`` the
    merged catalogue of ``unet_run`` and the MMF); ``truth``: the validation area's true
    clusters above the detectability floor; ``grids``: {"unet": ..., "mmf": ...}."""
    out = {}
    for name, cand in candidates.items():
        cand = cand[in_tiles(cand["GLON"], cand["GLAT"], tiles)] if len(cand) else cand
        if name == "combined":
            rule = combined_rule(cand, truth, radius, grids["unet"], grids["mmf"], target)
            out[name] = {"unet_run": unet_run, **rule}
        else:
            kind = "mmf" if name == "mmf" else "unet"
            col = S.score_column(name)
            out[name] = threshold_at_purity(cand, truth, radius, col, grids[kind], target)
    return out


def unet_min_snr(entry: dict) -> float:
    """The MMF S/N a U-Net detection also needs under a ``combined`` thresholds entry: its
    ``unet_min_snr``, or -inf (the U-Net alone) where that is null or absent."""
    c = entry.get("unet_min_snr")
    return -np.inf if c is None else float(c)


def operating_point(thresholds: dict, detector: str):
    """The fixed threshold of ``detector`` from a thresholds mapping (NaN: keep nothing);
    for ``combined`` the triple (U-Net, MMF, the S/N a U-Net candidate needs: -inf where
    ``unet_min_snr`` is null or absent)."""
    if detector not in thresholds:
        raise ValueError(f"thresholds: no entry for detector {detector!r}")
    entry = thresholds[detector]

    def num(x):
        return float("nan") if x is None else float(x)

    if detector == "combined":
        return (num(entry.get("unet_threshold")), num(entry.get("mmf_threshold")),
                unet_min_snr(entry))  # fmt: skip
    return num(entry.get("threshold"))


def read_thresholds(path, detectors) -> dict:
    """results/evaluation/thresholds.json, checked to hold every one of ``detectors``."""
    with open(path) as fh:
        data = json.load(fh)
    missing = [d for d in detectors if d not in data]
    if missing:
        raise ValueError(f"{path}: no thresholds for detector(s) {', '.join(missing)}")
    for d in detectors:
        keys = ("unet_threshold", "mmf_threshold") if d == "combined" else ("threshold",)
        for k in keys:
            if k not in data[d]:
                raise ValueError(f"{path}: entry {d!r} has no key {k!r}")
    return data
