"""Held-out operating points: thresholds fixed on validation, the spatial block bootstrap,
paired differences, the combined-rule search, per-candidate truth flags."""

import healpy as hp
import numpy as np
import pytest
from astropy.table import Table, vstack

from skydetect.clusters import heldout as H
from skydetect.clusters import scorecard as S
from skydetect.clusters.scorecard_table import build_scorecard

VAL_TILE, TEST_TILE = 9, 6
CFG = {"min_truth_snr": 2.0, "theta500_scale": 1.0, "min_radius_arcmin": 5.0,
       "max_radius_arcmin": 15.0, "purity_target": 0.9, "n_bootstrap": 40, "n_scramble": 2,
       "unet_detect_threshold": 0.5, "mmf_snr_threshold": 4.0}  # fmt: skip
GRIDS = {"unet": np.round(np.arange(0.5, 1.0, 0.02), 3), "mmf": np.arange(4.0, 10.01, 0.25)}


def _table(vec, **cols):
    glon, glat = hp.vec2ang(np.asarray(vec), lonlat=True)
    return Table({"GLON": glon, "GLAT": glat, **cols})


def _sky(rng, tile, n_true=300, n_false=150):
    """Truth (S/N 2-20, THETA500 3') in ``tile`` and a detector finding the bright clusters
    with high scores plus false candidates with low scores (PEAK_PROB; SNR = 10 x it)."""
    truth = _table(S.random_positions(n_true, [tile], rng), SNR=2 + 18 * rng.random(n_true) ** 2)
    truth["THETA500"] = 3.0
    truth["ID"] = np.arange(1000, 1000 + n_true)
    found = rng.random(n_true) < np.clip((truth["SNR"] - 2) / 6, 0, 1)
    tv = S.unit_vectors(truth, "t")[found] + rng.normal(0, 1e-4, (found.sum(), 3))
    cv = np.concatenate([tv, S.random_positions(n_false, [tile], rng)])
    cv /= np.linalg.norm(cv, axis=1)[:, None]
    score = np.concatenate([
        np.clip(truth["SNR"][found] / 10 + rng.normal(0, 0.1, found.sum()), 0.5, 1),
        rng.uniform(0.5, 0.8, n_false),
    ])  # fmt: skip
    return truth, _table(cv, PEAK_PROB=score, SNR=score * 10)


def _score(cand, truth, tiles, thresholds, seed=1):
    cands = {"unet_hfi": cand["GLON", "GLAT", "PEAK_PROB"], "mmf": cand["GLON", "GLAT", "SNR"]}
    cfg = {**CFG, "unet_thresholds": list(GRIDS["unet"]), "mmf_thresholds": list(GRIDS["mmf"])}
    table, *_ = build_scorecard(cands, truth, tiles, cfg, thresholds, seed=seed)
    return {r["DETECTOR"]: r for r in table}


def _validation_thresholds(rng):
    truth, cand = _sky(rng, VAL_TILE)
    radius = np.full(len(truth), 5.0)
    cands = {"unet_hfi": cand["GLON", "GLAT", "PEAK_PROB"], "mmf": cand["GLON", "GLAT", "SNR"]}
    return H.choose_thresholds(cands, truth, radius, [VAL_TILE], GRIDS, 0.9), truth, cand


def test_threshold_is_the_lowest_reaching_the_target_on_validation():
    chosen, truth, cand = _validation_thresholds(np.random.default_rng(1))
    t = chosen["unet_hfi"]["threshold"]
    assert chosen["unet_hfi"]["score"] == "PEAK_PROB" and chosen["mmf"]["score"] == "SNR"
    assert chosen["mmf"]["threshold"] == pytest.approx(10 * t, abs=0.25)
    k = int(np.flatnonzero(GRIDS["unet"] == t)[0])
    radius = np.full(len(truth), 5.0)
    pur = {}
    for thr in (GRIDS["unet"][k - 1], t):
        sub = cand[cand["PEAK_PROB"] >= thr]
        is_true, _ = H.truth_flags(sub, truth, radius)
        pur[thr] = is_true.mean()
        if thr == t:
            assert chosen["unet_hfi"]["n_true_val"] == is_true.sum()
    assert (
        pur[GRIDS["unet"][k - 1]] < 0.9 <= pur[t] == pytest.approx(chosen["unet_hfi"]["purity_val"])
    )


def test_validation_threshold_is_applied_unchanged_on_test():
    chosen, _, _ = _validation_thresholds(np.random.default_rng(2))
    t = chosen["unet_hfi"]["threshold"]
    truth, cand = _sky(np.random.default_rng(3), TEST_TILE)
    a = _score(cand, truth, [TEST_TILE], chosen)["unet_hfi"]
    assert a["THRESHOLD_VAL"] == t and a["N_CAND"] == np.sum(cand["PEAK_PROB"] >= t)
    # other test data: false candidates with high scores; the threshold stays, the test
    # purity and the test-tuned sweep point move
    rng = np.random.default_rng(4)
    extra = _table(S.random_positions(60, [TEST_TILE], rng), PEAK_PROB=np.full(60, 0.97),
                   SNR=np.full(60, 9.7))  # fmt: skip
    from astropy.table import vstack

    b = _score(vstack([cand, extra]), truth, [TEST_TILE], chosen)["unet_hfi"]
    assert b["THRESHOLD_VAL"] == t and b["N_CAND"] == a["N_CAND"] + 60
    assert b["PURITY_TEST"] < a["PURITY_TEST"] - 0.05
    assert b["N_TRUE_AT_P90"] >= a["N_TRUE_AT_P90"] - 2
    assert b["THRESHOLD_AT_P90"] != a["THRESHOLD_AT_P90"]


def test_a_detector_never_reaching_the_target_keeps_nothing_on_test():
    rng = np.random.default_rng(5)
    truth, _ = _sky(rng, VAL_TILE)
    noise = _table(S.random_positions(100, [VAL_TILE], rng), PEAK_PROB=rng.uniform(0.5, 1, 100))
    out = H.threshold_at_purity(noise, truth, 5.0, "PEAK_PROB", GRIDS["unet"], 0.9)
    assert out["threshold"] is None and out["n_true_val"] == 0
    assert np.isnan(H.operating_point({"unet_hfi": out}, "unet_hfi"))
    assert not np.any(S.threshold_mask(noise, "unet_hfi", [np.nan]))


def test_combined_rule_maximises_true_clusters_at_target_purity():
    # 10 separate clusters; merged candidates: true ones on a cluster, false ones far away
    truth = Table({"GLON": 100.0 + 2 * np.arange(10), "GLAT": np.full(10, 40.0),
                   "SNR": np.full(10, 8.0), "ID": np.arange(10)})  # fmt: skip
    nan = np.nan
    rows = [(0, 0.9, nan), (1, 0.9, nan), (2, 0.9, nan), (3, 0.9, nan),   # U-Net, sure
            (4, nan, 6.0), (5, nan, 6.0), (6, nan, 6.0), (7, nan, 6.0),   # MMF, bright
            (8, 0.5, nan), (9, nan, 4.5),                                 # faint, true
            (-1, 0.5, nan), (-2, nan, 4.5), (-3, nan, 4.5)]  # fmt: skip  # false
    cand = Table({
        "GLON": [100.0 + 2 * abs(i) if i >= 0 else 200.0 + 3 * i for i, _, _ in rows],
        "GLAT": [40.0 if i >= 0 else -30.0 for i, _, _ in rows],
        "PEAK_PROB": [p for _, p, _ in rows], "SNR": [s for _, _, s in rows],
    })  # fmt: skip
    # (0.5, 4.5): 10 true / 13; (0.5, 6): 9 / 10; (0.9, 4.5): 9 / 11; (0.9, 6): 8 / 8
    best = H.combined_rule(cand, truth, 5.0, [0.5, 0.9], [4.5, 6.0], 0.9)
    assert (best["unet_threshold"], best["mmf_threshold"]) == (0.5, 6.0)
    assert best["n_true_val"] == 9 and best["purity_val"] == pytest.approx(0.9)
    # a stricter target: only the purest pair is left
    best = H.combined_rule(cand, truth, 5.0, [0.5, 0.9], [4.5, 6.0], 0.95)
    assert (best["unet_threshold"], best["mmf_threshold"]) == (0.9, 6.0)
    assert best["n_true_val"] == 8
    none = H.combined_rule(cand[10:], truth, 5.0, [0.5, 0.9], [4.5, 6.0], 0.9)
    assert none["unet_threshold"] is None and none["mmf_threshold"] is None


def test_combined_rule_keeps_unet_detections_the_mmf_confirms_at_lower_snr():
    # 8 true clusters: 4 bright (MMF S/N 6), 4 faint that both detectors see (U-Net 0.9, MMF
    # S/N 4.5); false: 3 MMF-only at S/N 4.5 and 3 U-Net-only at 0.9, far from any cluster
    truth = Table({"GLON": 100.0 + 2 * np.arange(8), "GLAT": np.full(8, 40.0),
                   "SNR": np.full(8, 8.0), "ID": np.arange(8)})  # fmt: skip
    nan = np.nan
    rows = [(i, nan, 6.0) for i in range(4)] + [(i, 0.9, 4.5) for i in range(4, 8)]
    rows += [(-1, nan, 4.5), (-2, nan, 4.5), (-3, nan, 4.5)]
    rows += [(-4, 0.9, nan), (-5, 0.9, nan), (-6, 0.9, nan)]
    cand = Table({
        "GLON": [100.0 + 2 * i if i >= 0 else 200.0 + 3 * i for i, _, _ in rows],
        "GLAT": [40.0 if i >= 0 else -30.0 for i, _, _ in rows],
        "PEAK_PROB": [p for _, p, _ in rows], "SNR": [s for _, _, s in rows],
    })  # fmt: skip
    grids = ([0.5, 0.9, 0.99], [4.5, 6.0])
    best = H.combined_rule(cand, truth, 5.0, *grids, 0.9)
    # either detector alone: at best the 4 bright clusters (U-Net 0.99 keeps nothing); the
    # U-Net confirmed by the MMF at S/N 4.5 adds the 4 faint ones and none of the false
    assert (best["unet_threshold"], best["mmf_threshold"], best["unet_min_snr"]) == (0.5, 6.0, 4.5)
    assert best["n_true_val"] == 8 and best["purity_val"] == pytest.approx(1.0)
    op = H.operating_point({"combined": best}, "combined")
    keep = S.threshold_mask(cand, "combined", [op[0]], [op[1]], op[2])[0]
    assert keep.tolist() == [True] * 8 + [False] * 6
    # an entry without the key (or null) is the U-Net alone: its false candidates pass
    assert H.operating_point({"combined": {"unet_threshold": 0.5, "mmf_threshold": 6.0}},
                             "combined")[2] == -np.inf  # fmt: skip
    alone = S.threshold_mask(cand, "combined", [0.5], [6.0])[0]
    assert alone.sum() == 11 and alone[-3:].all()


def test_blocks_cover_the_tiles_and_resample_candidates_and_clusters_together():
    blocks = H.area_blocks([TEST_TILE, VAL_TILE])
    assert len(blocks) == 32
    lon, lat = hp.pix2ang(H.BLOCK_NSIDE, blocks, lonlat=True)
    assert set(hp.ang2pix(2, lon, lat, lonlat=True)) == {TEST_TILE, VAL_TILE}
    rng = np.random.default_rng(6)
    truth = _table(S.random_positions(200, [TEST_TILE, VAL_TILE], rng))
    cand = Table(truth, copy=True)  # one candidate on every cluster
    draws = H.block_draws(len(blocks), 50, rng)
    assert np.all(draws.sum(axis=1) == len(blocks))
    wc = H.block_weights(draws, H.block_index(cand, blocks, "cand"))
    wt = H.block_weights(draws, H.block_index(truth, blocks, "truth"))
    assert np.array_equal(wc, wt)  # same block, same count in every resample
    # rows of one block share its weight; a block drawn twice counts its rows twice
    idx = H.block_index(cand, blocks, "cand")
    for b in np.unique(idx)[:5]:
        assert np.all(wc[:, idx == b] == draws[:, [b]])
    with pytest.raises(ValueError, match="stray: 1 row"):
        H.block_index(Table({"GLON": [0.0], "GLAT": [-89.0]}), blocks, "stray")


def test_paired_bootstrap_of_identical_catalogues_has_zero_width():
    truth, cand = _sky(np.random.default_rng(7), TEST_TILE)
    same = cand["GLON", "GLAT", "PEAK_PROB", "SNR"]
    cands = {"unet_hfi": same, "mmf": same}
    fixed = {"unet_hfi": {"threshold": 0.7}, "mmf": {"threshold": 7.0}}  # the same cut
    table, *_ = build_scorecard(cands, truth, [TEST_TILE], CFG, fixed, seed=3)
    r = {x["DETECTOR"]: x for x in table}["unet_hfi"]
    assert r["DELTA_MMF"] == r["DELTA_MMF_LO95"] == r["DELTA_MMF_HI95"] == 0
    assert r["N_TRUE_AT_P90_HI"] > r["N_TRUE_AT_P90_LO"]  # each has a width of its own
    # unpaired (independent draws) the same two catalogues would differ
    rng = np.random.default_rng(8)
    blocks = H.area_blocks([TEST_TILE])
    idx = H.block_index(same, blocks, "c")
    n = [H.block_weights(H.block_draws(len(blocks), 200, rng), idx).sum(axis=1) for _ in "ab"]
    lo, hi = H.paired_difference(n[0], n[1])
    assert hi - lo > 0


def test_matched_candidates_flags_each_cluster_once():
    truth = Table({"GLON": [10.0, 20.0], "GLAT": [50.0, 50.0], "SNR": [9.0, 5.0],
                   "ID": [41, 42], "THETA500": [3.0, 3.0]})  # fmt: skip
    cand = Table({"GLON": [10.0, 10.01, 20.02, 30.0], "GLAT": [50.0] * 4,
                  "SNR": [8.0, 5.0, 4.6, 4.2], "X": [1, 2, 3, 4]})  # fmt: skip
    out = H.matched_candidates(cand, truth, np.array([5.0, 5.0]))
    assert out.colnames == ["GLON", "GLAT", "SNR", "IS_TRUE", "TRUTH_ID"]
    assert out["IS_TRUE"].tolist() == [True, False, True, False]
    assert out["TRUTH_ID"].tolist() == [41, -1, 42, -1]


def test_thresholds_file_must_name_every_detector(tmp_path):
    path = tmp_path / "thresholds.json"
    path.write_text('{"mmf": {"score": "SNR", "threshold": 5.0}}')
    assert H.read_thresholds(path, ["mmf"])["mmf"]["threshold"] == 5.0
    with pytest.raises(
        ValueError, match=r"thresholds.json: no thresholds for detector\(s\) combined"
    ):
        H.read_thresholds(path, ["mmf", "combined"])
    path.write_text('{"combined": {"unet_threshold": 0.5}}')
    with pytest.raises(ValueError, match="'combined' has no key 'mmf_threshold'"):
        H.read_thresholds(path, ["combined"])


def test_default_sweep_reaches_a_saturated_networks_confident_candidates():
    """Probabilities crowd near 1: true candidates at 0.9999+, false ones up to 0.9995; the
    default grid finds the purity there, a grid stopping at 0.995 would keep nothing."""
    rng = np.random.default_rng(3)
    truth, cand = _sky(rng, VAL_TILE, n_false=0)
    n = len(cand)
    nf = 3 * n
    false = _table(S.random_positions(nf, [VAL_TILE], rng), PEAK_PROB=rng.uniform(0.99, 0.9995, nf))
    cand["PEAK_PROB"] = 1 - 1e-5 * rng.random(n)  # every true candidate at >= 0.99999
    cand = vstack([cand["GLON", "GLAT", "PEAK_PROB"], false])
    radius = np.full(len(truth), 5.0)
    grid = S.default_grid("unet", 0.5)
    got = H.threshold_at_purity(cand, truth, radius, "PEAK_PROB", grid, 0.9)
    assert 0.999 < got["threshold"] <= 0.99999 and got["n_true_val"] == n
    old = grid[grid <= 0.995]
    assert H.threshold_at_purity(cand, truth, radius, "PEAK_PROB", old, 0.9)["threshold"] is None
