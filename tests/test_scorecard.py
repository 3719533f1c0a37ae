"""The cluster scorecard: matching in order of truth S/N, chance rate, sweeps, combination."""

import healpy as hp
import numpy as np
import pytest
from astropy.table import Table

from skydetect.clusters import scorecard as S

TILE = 6


def _table(vec, **cols):
    glon, glat = hp.vec2ang(np.asarray(vec), lonlat=True)
    return Table({"GLON": glon, "GLAT": glat, **cols})


def _truth(n, rng, snr=5.0):
    t = _table(S.random_positions(n, [TILE], rng), SNR=np.full(n, snr))
    t["THETA500"] = np.full(n, np.nan)
    return t


def test_matching_goes_by_truth_snr_not_separation():
    # one candidate between a bright and a faint cluster, closer to the faint one
    truth = Table({"GLON": [100.0, 100.1], "GLAT": [40.0, 40.0], "SNR": [10.0, 3.0]})
    cand = Table({"GLON": [100.07], "GLAT": [40.0]})
    m = S.Matcher(S.unit_vectors(cand, "c"), S.unit_vectors(truth, "t"), truth["SNR"], 7.0)
    c, t = m.match()
    assert c.tolist() == [0] and t.tolist() == [0, -1]
    # with a second candidate the faint cluster gets it: one-to-one
    cand2 = Table({"GLON": [100.07, 100.12], "GLAT": [40.0, 40.0]})
    c, t = S.Matcher(
        S.unit_vectors(cand2, "c"), S.unit_vectors(truth, "t"), truth["SNR"], 7.0
    ).match()
    assert c.tolist() == [0, 1] and t.tolist() == [0, 1]


def test_chance_rate_on_a_hand_built_sky_is_n_pi_r2():
    rng = np.random.default_rng(1)
    n_truth, r = 2000, 5.0
    truth = _truth(n_truth, rng)
    area_arcmin2 = 4 * np.pi / 48 * (180 * 60 / np.pi) ** 2
    expected = n_truth / area_arcmin2 * np.pi * r**2  # ~0.05
    rate = S.chance_rate(200, S.unit_vectors(truth, "t"), truth["SNR"], r, [TILE], 50, rng)
    assert rate == pytest.approx(expected, rel=0.12)


def test_scrambled_candidates_score_purity_at_their_chance_rate():
    rng = np.random.default_rng(2)
    truth = _truth(3000, rng)
    cand = _table(S.random_positions(400, [TILE], rng), PEAK_PROB=rng.uniform(0.5, 1, 400))
    row, _ = S.score_detector("unet", cand, truth, 5.0, [TILE], 0.5, [0.5, 0.7, 0.9],
                              n_bootstrap=20, n_scramble=20)  # fmt: skip
    assert row["N_CAND"] == 400
    assert row["PURITY"] == pytest.approx(row["CHANCE_RATE"], abs=0.03)
    assert 0.04 < row["CHANCE_RATE"] < 0.1
    assert np.isnan(row["C_SNR45_AT_P90"])  # chance never reaches purity 0.9


def _detector_sky(rng, n_true=300, n_false=150):
    """Truth with S/N 2-20; a detector that finds bright clusters with high scores, plus
    false candidates with low scores."""
    truth = _truth(n_true, rng)
    truth["SNR"] = 2 + 18 * rng.random(n_true) ** 2
    found = rng.random(n_true) < np.clip((truth["SNR"] - 2) / 6, 0, 1)
    tv = S.unit_vectors(truth, "t")[found]
    jitter = rng.normal(0, 1e-4, tv.shape)
    cv = np.concatenate([tv + jitter, S.random_positions(n_false, [TILE], rng)])
    cv /= np.linalg.norm(cv, axis=1)[:, None]
    score = np.concatenate([
        np.clip(truth["SNR"][found] / 10 + rng.normal(0, 0.1, found.sum()), 0.5, 1),
        rng.uniform(0.5, 0.8, n_false),
    ])  # fmt: skip
    cand = _table(cv, PEAK_PROB=score, SNR=score * 10)
    return truth, cand


def test_sweep_is_monotone_and_purity_0p9_is_interpolated():
    rng = np.random.default_rng(3)
    truth, cand = _detector_sky(rng)
    thr = np.round(np.arange(0.5, 1.0, 0.02), 3)
    row, curves = S.score_detector("unet", cand, truth, 5.0, [TILE], 0.9, thr, n_bootstrap=50)
    assert np.all(np.diff(curves["N_CAND"]) <= 0)
    assert np.all(np.diff(curves["C_SNR45"]) <= 1e-12)
    assert np.all(np.diff(curves["C_SNR6"]) <= 1e-12)
    assert curves["PURITY"][0] < 0.9 < curves["PURITY"][-3]
    k = np.flatnonzero(curves["PURITY"] >= 0.9)[0]
    assert thr[k - 1] <= row["THRESHOLD_AT_P90"] <= thr[k]
    c = curves["C_SNR45"]
    assert min(c[k - 1], c[k]) <= row["C_SNR45_AT_P90"] <= max(c[k - 1], c[k])
    assert row["C_SNR45_AT_P90_LO"] <= row["C_SNR45_AT_P90"] <= row["C_SNR45_AT_P90_HI"]
    assert row["PURITY_LO"] <= row["PURITY"] <= row["PURITY_HI"]


def test_at_purity_interpolates_and_reports_never():
    c, t = S.at_purity([0.5, 0.6, 0.7], np.array([0.8, 0.85, 0.95]), np.array([0.9, 0.8, 0.6]))
    assert t == pytest.approx(0.65) and c == pytest.approx(0.7)
    c, t = S.at_purity([0.5, 0.6], np.array([0.5, 0.6]), np.array([0.9, 0.8]))
    assert np.isnan(c) and np.isnan(t)


def test_merge_and_combined_score():
    unet = Table({"GLON": [10.0, 20.0], "GLAT": [50.0, 50.0], "PEAK_PROB": [0.95, 0.6]})
    mmf = Table({"GLON": [10.02, 30.0], "GLAT": [50.0, 50.0], "SNR": [7.0, 4.2]})
    m = S.merge_catalogues(unet, mmf, 5.0)
    assert len(m) == 3 and sorted(m["DETECTORS"]) == ["both", "mmf", "unet"]
    both = m[m["DETECTORS"] == "both"][0]
    assert both["GLON"] == pytest.approx(10.02) and both["PEAK_PROB"] == 0.95
    keep = S.threshold_mask(m, "combined", [0.9], [5.0])
    assert keep.tolist() == [[True, False, False]]
    keep = S.threshold_mask(m, "combined", [0.5], [4.0])
    assert keep.tolist() == [[True, True, True]]


def test_combined_catalogue_beats_either_when_they_find_different_clusters():
    rng = np.random.default_rng(4)
    truth = _truth(200, rng, snr=8.0)
    tv = S.unit_vectors(truth, "t")
    a = _table(tv[:120], PEAK_PROB=np.full(120, 0.95))
    b = _table(tv[80:], SNR=np.full(120, 6.0))
    comb = S.merge_catalogues(a, b, 5.0)
    ra, _ = S.score_detector("unet", a, truth, 5.0, [TILE], 0.9, [0.9], n_bootstrap=10)
    rb, _ = S.score_detector("mmf", b, truth, 5.0, [TILE], 4.5, [4.5, 5.0], n_bootstrap=10)
    rc, _ = S.score_detector("combined", comb, truth, 5.0, [TILE], (0.9, 4.5), [0.9], [4.5],
                             n_bootstrap=10)  # fmt: skip
    assert ra["C_SNR45"] == pytest.approx(0.6) and rb["C_SNR45"] == pytest.approx(0.6)
    assert rc["C_SNR45"] == pytest.approx(1.0) and rc["PURITY"] == 1.0
    assert rc["C_SNR45_AT_P90"] == pytest.approx(1.0)


def test_scorecard_table_markdown_and_figure(tmp_path):
    from skydetect.clusters.detect import write_table_atomic
    from skydetect.clusters.scorecard_table import (
        HELDOUT_COLUMNS,
        build_scorecard,
        mass_z_completeness,
        scorecard_markdown,
    )
    from skydetect.plots.detections import plot_completeness_mass_z, plot_purity_completeness

    rng = np.random.default_rng(5)
    truth, cand = _detector_sky(rng)
    truth["THETA500"] = 3.0
    truth["M500"] = rng.uniform(1, 10, len(truth))
    truth["Z"] = rng.uniform(0.05, 1.0, len(truth))
    unet = cand["GLON", "GLAT", "PEAK_PROB"]
    mmf = cand["GLON", "GLAT", "SNR"][::2]
    cands = {"unet_hfi_y": unet, "mmf": mmf, "unet_hfi": unet[::3],
             "combined": S.merge_catalogues(unet[::3], mmf, 5.0)}  # fmt: skip
    cfg = {"min_truth_snr": 2.0, "theta500_scale": 1.0, "min_radius_arcmin": 5.0,
           "max_radius_arcmin": 15.0, "operating_point": {"unet": 0.9, "mmf": 4.5},
           "purity_target": 0.9, "n_bootstrap": 30, "n_scramble": 3,
           "unet_detect_threshold": 0.5, "mmf_snr_threshold": 4.0}  # fmt: skip
    fixed = {"unet_hfi": {"threshold": 0.9}, "unet_hfi_y": {"threshold": 0.9},
             "mmf": {"threshold": 4.5},
             "combined": {"unet_threshold": 0.9, "mmf_threshold": 4.5}}  # fmt: skip
    table, curves, bins, found = build_scorecard(cands, truth, [TILE], cfg, fixed, seed=1)
    assert list(table["DETECTOR"]) == ["unet_hfi", "unet_hfi_y", "mmf", "combined"]
    assert table.colnames[: len(S.SCORECARD_COLUMNS)] == S.SCORECARD_COLUMNS
    assert table.colnames[len(S.SCORECARD_COLUMNS) :][: len(HELDOUT_COLUMNS)] == HELDOUT_COLUMNS
    assert table["DELTA_MMF"][2] == 0 and table["DELTA_MMF_LO95"][2] == 0
    assert len(found) == table.meta["n_truth_detectable"]
    assert np.all(table["N_TRUE_AT_P90_LO"] <= table["N_TRUE_AT_P90"])
    assert np.all(table["N_TRUE_AT_P90"] <= table["N_TRUE_AT_P90_HI"])
    # the combined catalogue finds at least what each of its parts finds at the same point
    c = {r["DETECTOR"]: r for r in table}
    assert c["combined"]["C_SNR45"] >= max(c["unet_hfi"]["C_SNR45"], c["mmf"]["C_SNR45"])
    write_table_atomic(table, tmp_path / "scorecard.ecsv")
    back = Table.read(tmp_path / "scorecard.ecsv")
    assert back.meta["min_truth_snr"] == 2.0 and len(back) == 4
    md = scorecard_markdown(table, "snakemake --cores all results/evaluation/scorecard.md")
    assert md.count("\n| ") == 5 and "Regenerate" in md
    plot_purity_completeness(curves, bins, table, tmp_path / "pc.png")
    assert (tmp_path / "pc.png").stat().st_size > 10_000
    mz = mass_z_completeness(found)
    assert set(mz["VARIABLE"]) == {"M500", "Z"} and set(mz["DETECTOR"]) == set(cands)
    plot_completeness_mass_z(mz, tmp_path / "mz.png")
    assert (tmp_path / "mz.png").stat().st_size > 10_000
