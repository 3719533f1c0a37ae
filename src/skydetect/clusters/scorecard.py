"""The cluster scorecard: every detector scored the same way against the simulated truth.

* **Truth**: the true clusters in the searched tiles whose truth S/N (six-channel matched
  filter, column ``SNR``) is at least the detectability floor ``min_truth_snr`` (default 2):
  a candidate near a cluster far below detectability is not a detection of it.
* **Matching**: one-to-one, in order of truth S/N (brightest first); each true cluster takes
  the nearest still-free candidate within its radius ``clip(scale x THETA500, min, max)``,
  so a faint cluster cannot steal a bright cluster's candidate.
* **Chance rate**: the same candidates at random positions inside the searched tiles
  (``n_scramble`` draws), scored the same way: the purity that pure chance would give.
* **Sweep**: purity and completeness (truth S/N > 4.5 and > 6) as functions of the
  detector's score threshold (U-Net ``PEAK_PROB``, MMF ``SNR``; for the combined catalogue a
  grid of both); completeness at purity 0.90 interpolated along the sweep (the combined
  catalogue: the best over the MMF thresholds), with bootstrap intervals (68 %) from
  resampling candidates and true clusters.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
from astropy.table import Table

from skydetect.clusters.crossmatch import galactic, greedy_match
from skydetect.schema import schema_defaults

SCORECARD_COLUMNS = [
    "DETECTOR", "N_CAND", "PURITY", "PURITY_LO", "PURITY_HI", "CHANCE_RATE", "C_SNR45",
    "C_SNR6", "C_SNR45_AT_P90", "C_SNR45_AT_P90_LO", "C_SNR45_AT_P90_HI", "THRESHOLD_AT_P90",
]  # fmt: skip
HEADLINE = (4.5, 6.0)

_EVALUATE = schema_defaults("clusters.evaluate")  # the scorecard's defaults
_PURITY = _EVALUATE["purity_target"]


def score_column(detector: str) -> str:
    """The score a detector's candidates are thresholded on."""
    return "SNR" if detector == "mmf" else "PEAK_PROB"


def unit_vectors(table: Table, what: str) -> np.ndarray:
    """(N, 3) galactic unit vectors of a table's positions (``what`` names it in errors)."""
    c = galactic(table, what=what)
    return np.asarray(hp.ang2vec(c.l.deg, c.b.deg, lonlat=True)).reshape(-1, 3)


def candidate_pairs(cand_vec, truth_vec, radius_arcmin) -> tuple[np.ndarray, ...]:
    """All (candidate, truth, separation [arcmin]) pairs closer than the truth's radius."""
    if len(cand_vec) == 0 or len(truth_vec) == 0:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros(0)
    from scipy.spatial import cKDTree  # lazy: ~0.25 s to import, needed only here

    radius = np.broadcast_to(np.asarray(radius_arcmin, float), (len(truth_vec),))
    chord = 2 * np.sin(np.radians(radius.max() / 60.0) / 2)
    tree = cKDTree(cand_vec)
    lists = tree.query_ball_point(truth_vec, chord)
    tj = np.repeat(np.arange(len(truth_vec)), [len(x) for x in lists])
    ci = np.concatenate([np.asarray(x, np.int64) for x in lists]) if len(tj) else tj
    cosang = np.clip(np.einsum("ij,ij->i", cand_vec[ci], truth_vec[tj]), -1, 1)
    d = np.degrees(np.arccos(cosang)) * 60.0
    ok = d <= radius[tj]
    return ci[ok], tj[ok], d[ok]


class Matcher:
    """One-to-one matching in order of truth S/N for any subset of the candidates."""

    def __init__(self, cand_vec, truth_vec, truth_snr, radius_arcmin):
        self.n_cand, self.n_truth = len(cand_vec), len(truth_vec)
        ci, tj, d = candidate_pairs(cand_vec, truth_vec, radius_arcmin)
        order = np.lexsort((ci, d, -np.asarray(truth_snr, float)[tj]))
        self.ci, self.tj, self.d = ci[order], tj[order], d[order]

    def match(self, active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(candidate -> truth index or -1, truth -> candidate index or -1)."""
        cand = np.full(self.n_cand, -1, np.int64)
        truth = np.full(self.n_truth, -1, np.int64)
        act = np.ones(self.n_cand, bool) if active is None else np.asarray(active, bool)
        for c, t in zip(self.ci.tolist(), self.tj.tolist(), strict=True):
            if truth[t] < 0 and cand[c] < 0 and act[c]:
                truth[t], cand[c] = c, t
        return cand, truth


def random_positions(n: int, tiles, rng) -> np.ndarray:
    """``n`` unit vectors uniform on the sphere inside the nside-2 RING ``tiles``."""
    tiles = np.asarray(sorted(int(t) for t in tiles))
    out = np.zeros((0, 3))
    while len(out) < n:
        m = max(64, 4 * (n - len(out)) * 48 // max(len(tiles), 1))
        z = rng.uniform(-1, 1, m)
        phi = rng.uniform(0, 2 * np.pi, m)
        s = np.sqrt(1 - z * z)
        v = np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=-1)
        out = np.concatenate([out, v[np.isin(hp.vec2pix(2, *v.T), tiles)]])
    return out[:n]


def chance_rate(n_cand, truth_vec, truth_snr, radius, tiles, n_scramble, rng) -> float:
    """Mean fraction of ``n_cand`` random positions in ``tiles`` matched to the truth."""
    if n_cand == 0:
        return float("nan")
    rates = []
    for _ in range(int(n_scramble)):
        m = Matcher(random_positions(n_cand, tiles, rng), truth_vec, truth_snr, radius)
        rates.append(np.mean(m.match()[0] >= 0))
    return float(np.mean(rates))


def sweep(matcher: Matcher, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``keep`` (T, Nc): (candidate is true (T, Nc), truth detected (T, Nt))."""
    cand_true = np.zeros(keep.shape, bool)
    truth_det = np.zeros((keep.shape[0], matcher.n_truth), bool)
    for k, row in enumerate(keep):
        c, t = matcher.match(row)
        cand_true[k], truth_det[k] = c >= 0, t >= 0
    return cand_true, truth_det


def rates(keep, cand_true, truth_det, truth_sel, wc=None, wt=None):
    """Purity (.., T) and completeness (.., T) over the truth subset ``truth_sel``; ``wc``,
    ``wt``: bootstrap counts (B, Nc) and (B, Nt), or None for the data themselves."""
    wc = np.ones(keep.shape[1]) if wc is None else wc
    wt = np.ones(truth_det.shape[1]) if wt is None else wt
    n_kept = wc @ keep.T.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = (wc @ cand_true.T.astype(float)) / n_kept
        wts = wt * truth_sel
        completeness = (wts @ truth_det.T.astype(float)) / np.sum(wts, axis=-1, keepdims=True)
    return purity, completeness


def at_purity(thresholds, purity, completeness, target=_PURITY) -> tuple[float, float]:
    """(completeness, threshold) where the purity first reaches ``target`` along ascending
    thresholds, linearly interpolated; NaN where it never does."""
    ok = np.flatnonzero(np.nan_to_num(purity, nan=-1.0) >= target)
    if ok.size == 0:
        return float("nan"), float("nan")
    k = int(ok[0])
    if k == 0 or not np.isfinite(purity[k - 1]):
        return float(completeness[k]), float(thresholds[k])
    f = (target - purity[k - 1]) / (purity[k] - purity[k - 1])
    c = completeness[k - 1] + f * (completeness[k] - completeness[k - 1])
    return float(c), float(thresholds[k - 1] + f * (thresholds[k] - thresholds[k - 1]))


def _best_at_purity(grid_thresholds, purity, completeness, target, n_rows):
    """Combined: the best ``at_purity`` over the rows (MMF thresholds) of a flattened grid."""
    best = (float("nan"), float("nan"))
    p = purity.reshape(n_rows, -1)
    c = completeness.reshape(n_rows, -1)
    for r in range(n_rows):
        cc, tt = at_purity(grid_thresholds, p[r], c[r], target)
        if np.isfinite(cc) and not cc <= np.nan_to_num(best[0], nan=-1):
            best = (cc, tt)
    return best


def merge_catalogues(unet: Table, mmf: Table, radius_arcmin: float) -> Table:
    """U-Net and MMF candidates merged by position: pairs within ``radius_arcmin`` (closest
    first, one-to-one) become one entry with both scores (MMF position); the others keep
    their own score and NaN for the other's."""
    idx, _ = greedy_match(galactic(unet, what="U-Net"), galactic(mmf, what="MMF"), radius_arcmin)
    glon = list(np.asarray(mmf["GLON"], float))
    glat = list(np.asarray(mmf["GLAT"], float))
    snr = list(np.asarray(mmf["SNR"], float))
    prob = [np.nan] * len(mmf)
    for i, j in enumerate(idx):
        p = float(unet["PEAK_PROB"][i])
        if j >= 0:
            prob[j] = p
        else:
            glon.append(float(unet["GLON"][i]))
            glat.append(float(unet["GLAT"][i]))
            snr.append(np.nan)
            prob.append(p)
    out = Table({"GLON": glon, "GLAT": glat, "PEAK_PROB": prob, "SNR": snr},
                dtype=[float, float, float, float])  # fmt: skip
    out["DETECTORS"] = np.where(
        np.isfinite(out["PEAK_PROB"]) & np.isfinite(out["SNR"]), "both",
        np.where(np.isfinite(out["SNR"]), "mmf", "unet"),
    ).astype("U4")  # fmt: skip
    out["ID"] = np.arange(1, len(out) + 1)
    out.meta["MERGE_RAD"] = float(radius_arcmin)
    return out


# A sigmoid output crowds near 1 (peak probabilities of 0.9999 are common): the sweep steps on
# in the logit, so that a purity reached only by the most confident candidates is found.
UNET_GRID_NEAR_ONE = (0.99, 0.995, 0.998, 0.999, 0.9995, 0.9998, 0.9999, 0.99995, 0.99998, 0.99999)


def default_grid(detector: str, lowest: float) -> np.ndarray:
    """Sweep thresholds from the detection threshold up (U-Net probability, MMF S/N)."""
    if detector == "mmf":
        return np.round(np.arange(lowest, max(lowest, 10.0) + 1e-9, 0.25), 4)
    return np.unique(
        np.concatenate([np.round(np.arange(lowest, 0.99, 0.02), 4), UNET_GRID_NEAR_ONE])
    )


def threshold_mask(cand: Table, detector: str, thresholds, mmf_thresholds=None,
                   unet_min_snr: float = -np.inf) -> np.ndarray:  # fmt: skip
    """(T, N) whether each candidate passes each threshold of ``detector``'s score; for
    ``combined``, each (MMF S/N, U-Net) pair of ``mmf_thresholds`` x ``thresholds``, MMF-major:
    ``SNR >= b``, or ``PEAK_PROB >= a`` with ``SNR >= unet_min_snr`` (-inf: the U-Net alone;
    a U-Net candidate without an MMF detection has no S/N)."""
    if detector != "combined":
        s = np.nan_to_num(np.asarray(cand[score_column(detector)], float), nan=-np.inf)
        return s[None, :] >= np.asarray(thresholds, float)[:, None]
    pp = np.nan_to_num(np.asarray(cand["PEAK_PROB"], float), nan=-np.inf)
    sn = np.nan_to_num(np.asarray(cand["SNR"], float), nan=-np.inf)
    confirmed = sn >= unet_min_snr
    rows = [(sn >= tm) | ((pp >= tu) & confirmed) for tm in mmf_thresholds for tu in thresholds]
    return np.array(rows).reshape(-1, len(cand))


def _keep_matrix(cand: Table, detector: str, thresholds, mt, op) -> np.ndarray:
    """Which candidates each sweep threshold (rows) and the operating point (last row) keep."""
    if not len(cand):
        return np.zeros((len(thresholds) * len(mt) + 1, 0), bool)
    return np.vstack(
        [
            threshold_mask(cand, detector, thresholds, mt, op[2]),
            threshold_mask(cand, detector, [op[0]], [op[1]], op[2]),
        ]
    )


def _bootstrap_weights(rng, nc: int, nt: int, n_bootstrap: int, weights):
    """Bootstrap counts (B, Nc), (B, Nt): the given block-bootstrap ``weights``, or
    ``n_bootstrap`` independent multinomial resamples of the candidates, then of the truth."""
    if weights is not None:
        wc, wt = (np.asarray(w, float) for w in weights)
        return wc, wt
    wc = (
        rng.multinomial(nc, np.full(nc, 1.0 / nc), size=n_bootstrap)
        if nc
        else np.zeros((n_bootstrap, 0))
    )
    wt = (
        rng.multinomial(nt, np.full(nt, 1.0 / nt), size=n_bootstrap)
        if nt
        else np.zeros((n_bootstrap, 0))
    )
    return wc, wt


def _quantile(x, lo: bool) -> float:
    """The 16th (``lo``) or 84th percentile of the finite values (NaN without any)."""
    x = x[np.isfinite(x)]
    return float(np.percentile(x, 16 if lo else 84)) if x.size else float("nan")


def _sweep_curves(detector, thresholds, mt, keep, purity, c45, c6) -> Table:
    n_grid = len(thresholds) * len(mt)
    return Table({
        "DETECTOR": [detector] * n_grid,
        "THRESHOLD": np.tile(thresholds, len(mt)),
        "THRESHOLD_MMF": np.repeat(mt, len(thresholds)),
        "N_CAND": keep[:-1].sum(axis=1),
        "PURITY": purity[:-1],
        "C_SNR45": c45[:-1],
        "C_SNR6": c6[:-1],
    })  # fmt: skip


def score_detector(
    detector: str,
    cand: Table,
    truth: Table,
    radius,
    tiles,
    operating_point,
    thresholds,
    mmf_thresholds=None,
    target: float = _PURITY,
    n_bootstrap: int = _EVALUATE["n_bootstrap"],
    n_scramble: int = _EVALUATE["n_scramble"],
    seed: int = 0,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict, Table]:
    """One scorecard row (dict) and the sweep curves of ``detector``.

    ``truth``: the true clusters of the area above the detectability floor, with a per-cluster
    ``radius`` [arcmin]; ``operating_point``: the nominal threshold (combined: the triple
    (U-Net, MMF, the MMF S/N a U-Net candidate needs; a pair: none), see
    :func:`threshold_mask`; NaN keeps nothing); ``thresholds``: ascending sweep (combined:
    the U-Net's, with ``mmf_thresholds`` the MMF's, at the operating point's third value);
    ``weights``: bootstrap counts of the candidates (B, Nc) and true clusters (B, Nt) (a block
    bootstrap, :mod:`skydetect.clusters.heldout`), or None for ``n_bootstrap`` independent
    resamples of each.
    """
    rng = np.random.default_rng([int(seed), 12, sum(map(ord, detector))])
    comb = detector == "combined"
    thresholds = np.asarray(thresholds, float)
    mt = np.asarray(mmf_thresholds if comb else [np.nan], float)
    op = (*operating_point, -np.inf)[:3] if comb else (operating_point, None, -np.inf)
    keep = _keep_matrix(cand, detector, thresholds, mt, op)
    tvec = unit_vectors(truth, "truth")
    snr = np.asarray(truth["SNR"], float)
    matcher = Matcher(
        unit_vectors(cand, detector) if len(cand) else np.zeros((0, 3)), tvec, snr, radius
    )
    cand_true, truth_det = sweep(matcher, keep)
    sel = {s: snr > s for s in HEADLINE}
    purity, c45 = rates(keep, cand_true, truth_det, sel[4.5])
    _, c6 = rates(keep, cand_true, truth_det, sel[6.0])

    def p90(p, c):
        if comb:
            return _best_at_purity(thresholds, p[:-1], c[:-1], target, len(mt))
        return at_purity(thresholds, p[:-1], c[:-1], target)

    c_p90, t_p90 = p90(purity, c45)
    wc, wt = _bootstrap_weights(rng, len(cand), len(truth), n_bootstrap, weights)
    pb, cb = rates(keep, cand_true, truth_det, sel[4.5], wc, wt)
    boot = np.array([p90(pb[b], cb[b])[0] for b in range(len(wc))])
    n_nom = int(keep[-1].sum())
    row = {
        "DETECTOR": detector,
        "N_CAND": n_nom,
        "PURITY": float(purity[-1]),
        "PURITY_LO": _quantile(pb[:, -1], True),
        "PURITY_HI": _quantile(pb[:, -1], False),
        "CHANCE_RATE": chance_rate(n_nom, tvec, snr, radius, tiles, n_scramble, rng),
        "C_SNR45": float(c45[-1]),
        "C_SNR6": float(c6[-1]),
        "C_SNR45_AT_P90": c_p90,
        "C_SNR45_AT_P90_LO": _quantile(boot, True),
        "C_SNR45_AT_P90_HI": _quantile(boot, False),
        "THRESHOLD_AT_P90": t_p90,
        "BOOT_FRACTION_P90": float(np.mean(np.isfinite(boot))),
        "N_TRUE_SNR45": int(sel[4.5].sum()),
        "N_TRUE_SNR6": int(sel[6.0].sum()),
        "N_TRUE_AT_P90": int(cand_true[-1].sum()),
        "detected_nominal": truth_det[-1],
        "n_true_boot": np.asarray(wc, float) @ cand_true[-1].astype(float),
        "c45_boot": cb[:, -1],
    }
    return row, _sweep_curves(detector, thresholds, mt, keep, purity, c45, c6)
