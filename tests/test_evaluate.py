"""Evaluation numbers on a hand-built truth / candidate pair."""

import astropy.units as u
import healpy as hp
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from skydetect.clusters.crossmatch import crossmatch
from skydetect.clusters.detect import empty_table
from skydetect.clusters.evaluate import (
    binomial_fraction,
    completeness_curve,
    evaluate,
    format_summary,
    in_tiles,
)

LON0, LAT0 = hp.pix2ang(2, 6, lonlat=True)


def _at(i, offset_arcmin=0.0, pa=0.0):
    """Position i of a grid inside tile 6 (1 degree apart), shifted by offset_arcmin."""
    c = SkyCoord(LON0 + (i % 4 - 1.5), LAT0 + (i // 4 - 1.0), unit="deg", frame="galactic")
    o = c.directional_offset_by(pa * u.deg, offset_arcmin * u.arcmin)
    return float(o.l.deg), float(o.b.deg)


@pytest.fixture
def pair():
    snr = [3.0, 5.0, 5.0, 7.0, 7.0, 10.0]
    theta = [4.0, 4.0, 4.0, 10.0, 4.0, 4.0]
    pos = [_at(i) for i in range(6)]
    outside = (LON0 + 180.0, -LAT0)  # tile 41 or so: out of the area
    truth = Table(
        {
            "ID": np.arange(7),
            "GLON": [p[0] for p in pos] + [outside[0]],
            "GLAT": [p[1] for p in pos] + [outside[1]],
            "M500": [1.5, 2.5, 2.5, 3.5, 5.0, 9.0, 10.0],
            "Z": [0.05, 0.15, 0.25, 0.35, 0.5, 0.7, 0.2],
            "THETA500": theta + [5.0],
            "SNR": snr + [20.0],
            "KNOWN": [False, True, False, False, False, True, True],
        }
    )
    det_pos = [
        _at(1, 2.0),  # T1 at 2': matched
        _at(2, 6.0),  # T2 at 6' > max(theta500, 5'): missed
        _at(3, 8.0),  # T3 at 8' < theta500 = 10': matched
        _at(4, 1.0),  # T4 at 1': matched
        _at(4, 3.0, pa=180.0),  # T4 again at 3': one-to-one, so a false positive
        _at(5, 0.5),  # T5: matched
        _at(10),  # nothing: false positive
    ]
    det = empty_table()
    for lon, lat in det_pos:
        det.add_row((lon, lat, 0.0, 0.0, 0.95, 0.93, 40.0, 4.0, 3, 6))
    known = {"PSZ2": Table({"NAME": ["A", "B", "C"], "GLON": truth["GLON"][[0, 1, 6]],
                            "GLAT": truth["GLAT"][[0, 1, 6]]})}  # fmt: skip
    cand = crossmatch(det, known, None, 7.0, 5.0)
    return truth, cand, known


def test_hand_built_pair_numbers(pair):
    truth, cand, known = pair
    assert in_tiles(truth["GLON"], truth["GLAT"], [6]).tolist() == [True] * 6 + [False]
    summary, curves, matched = evaluate(cand, [6], truth, known, 7.0, 1.0, 5.0, 15.0)
    t = summary["truth"]
    assert t["n_true_in_area"] == 6  # the cluster outside tile 6 is not counted
    assert t["n_true_positive"] == 4 and t["n_false_positive"] == 3
    assert t["purity"]["k"] == 4 and t["purity"]["n"] == 7
    assert t["purity"]["value"] == pytest.approx(4 / 7)
    assert t["completeness"]["snr>4.5"]["value"] == pytest.approx(4 / 5)
    assert t["completeness"]["snr>6"]["value"] == pytest.approx(1.0)
    assert matched["DETECTED"].tolist() == [False, True, False, True, True, True]
    assert matched["CANDIDATE_ID"].tolist() == [-1, 1, -1, 3, 4, 6]
    assert matched["SEP_ARCMIN"][3] == pytest.approx(8.0, abs=1e-6)
    # PSZ2: A (T0, missed) and B (T1, found) are in the area, C is outside
    assert summary["known_recovery"]["PSZ2"]["k"] == 1
    assert summary["known_recovery"]["PSZ2"]["n"] == 2
    assert summary["area_deg2"] == pytest.approx(41252.96 / 48, rel=1e-5)
    snr = curves[curves["VARIABLE"] == "SNR"]
    row = snr[(snr["BIN_LO"] == 5.0)][0]
    assert (row["N_TRUE"], row["N_DETECTED"]) == (2, 1)
    assert row["COMPLETENESS"] == pytest.approx(0.5)
    assert curves[curves["VARIABLE"] == "Z"]["N_TRUE"].sum() == 6
    text = format_summary("unet", summary)
    assert "purity" in text and "4/7" in text and "snr>4.5" in text


def test_match_radius_follows_theta500(pair):
    truth, cand, known = pair
    # with theta500 scaled by 2 the radius of T2 is 8': its candidate at 6' now matches
    summary, _, matched = evaluate(cand, [6], truth, known, 7.0, 2.0, 5.0, 15.0)
    assert matched["DETECTED"][2]
    assert summary["truth"]["n_true_positive"] == 5


def test_real_sky_mode_has_no_truth_numbers(pair):
    _, cand, known = pair
    summary, curves, matched = evaluate(cand, [6], None, known)
    assert summary["mode"] == "real" and "truth" not in summary and matched is None
    assert len(curves) == 0
    assert summary["counts"] == {"known": 1, "new": 6, "spurious": 0}


def test_candidates_outside_the_area_and_missing_truth_columns(pair, caplog):
    truth, cand, _ = pair
    # candidates outside the searched tiles are left out (with a warning), truth too
    summary, _, matched = evaluate(cand, [7], truth)
    assert summary["n_candidates"] == 0 and summary["n_outside_area"] == 7
    assert summary["truth"]["n_true_in_area"] == 0 and len(matched) == 0
    assert "outside the searched tiles [7]" in caplog.text
    truth.remove_column("THETA500")
    with pytest.raises(ValueError, match="truth catalogue: missing column.*THETA500"):
        evaluate(cand, [6], truth)


def test_binomial_errors_and_empty_bins():
    frac, lo, hi = binomial_fraction([0, 5, 10], [10, 10, 10])
    assert frac.tolist() == [0.0, 0.5, 1.0]
    assert lo[0] == 0.0 and hi[2] == 1.0 and 0 < hi[0] < 0.2
    assert lo[1] < 0.5 < hi[1]
    curve = completeness_curve([1.0, 2.5, 2.6], [True, False, True], [0, 2, 3, 4], "SNR")
    assert curve["N_TRUE"].tolist() == [1, 2, 0]
    assert curve["COMPLETENESS"][1] == 0.5 and np.isnan(curve["COMPLETENESS"][2])


def test_no_candidates(pair):
    truth, cand, known = pair
    summary, _, matched = evaluate(cand[:0], [6], truth, known)
    assert summary["truth"]["purity"]["value"] is None
    assert summary["truth"]["completeness"]["snr>4.5"]["value"] == 0.0
    assert not matched["DETECTED"].any()


def test_comparison_table_and_figures(pair, tmp_path):
    from skydetect.clusters.evaluate import comparison_table
    from skydetect.plots.detections import (
        plot_comparison,
        plot_completeness,
        plot_sky_map,
        select_patches,
    )

    truth, cand, known = pair
    s_unet, c_unet, _ = evaluate(cand, [6], truth, known)
    s_mmf, c_mmf, _ = evaluate(cand[:3], [6], truth, known)
    table = comparison_table({"unet": s_unet, "mmf": s_mmf}, {"unet": c_unet, "mmf": c_mmf})
    purity = table[table["QUANTITY"] == "purity"]
    assert purity["RUN"].tolist() == ["unet", "mmf"]
    assert purity["VALUE"][0] == pytest.approx(4 / 7)
    assert purity["VALUE"][1] == pytest.approx(2 / 3)  # C1 (T1) and C3 (T3) of 3
    n_snr_bins = len(c_unet[c_unet["VARIABLE"] == "SNR"])
    assert np.sum(table["QUANTITY"] == "completeness_snr") == 2 * n_snr_bins
    for fn, args in (
        (plot_completeness, (c_unet, s_unet, tmp_path / "c.png", "unet")),
        (plot_sky_map, (cand, [6], tmp_path / "s.png", truth)),
        (plot_comparison, (table, tmp_path / "k.png")),
    ):
        fn(*args)
        assert args[2 if fn is not plot_comparison else 1].stat().st_size > 10_000
    # patches for the panels: highest scores first, centres apart
    pick = select_patches(np.array([5, 9, 0, 8]), [10, 10.01, 30, 50], [0, 0, 0, 0], 2, 1.0)
    assert pick == [1, 3]


def test_binomial_errors_are_never_negative():
    for n in range(1, 80):
        k = np.arange(n + 1)
        frac, lo, hi = binomial_fraction(k, np.full(n + 1, n))
        assert np.all(lo <= frac) and np.all(frac <= hi)
        assert np.all((lo >= 0) & (hi <= 1))


def test_default_test_tiles_span_latitude_and_avoid_validation():
    """Three test tiles (high, mid, low |b|), none sharing an edge or corner with a
    validation tile (healpy neighbours at nside 2)."""
    from pathlib import Path

    import yaml

    cfg = yaml.safe_load((Path(__file__).parents[1] / "config/config.yaml").read_text())
    tiles = cfg["clusters"]["tiles"]
    test, val = tiles["test"], tiles["validation"]
    assert len(test) == 3
    b = sorted(abs(hp.pix2ang(2, t, lonlat=True)[1]) for t in test)
    assert b[0] < 25 < b[1] < 50 < b[2]
    for t in test:
        assert t not in val
        assert not set(hp.get_all_neighbours(2, t).tolist()) & set(val), t


def test_truth_below_the_detectability_floor_cannot_be_matched():
    truth = Table(
        {"GLON": [10.0, 10.0], "GLAT": [40.0, 41.0], "M500": [3.0, 1.0], "Z": [0.1, 0.1],
         "THETA500": [3.0, 3.0], "SNR": [8.0, 1.5]}
    )  # fmt: skip
    cand = Table({"GLON": [10.0, 10.0], "GLAT": [40.01, 41.01], "ID": [1, 2],
                  "CLASS": ["new", "new"]})  # fmt: skip
    tiles = [int(hp.ang2pix(2, 10.0, 40.5, lonlat=True))]
    s, _, matched = evaluate(cand, tiles, truth, min_truth_snr=2.0)
    assert s["truth"]["n_true_positive"] == 1 and s["truth"]["purity"]["value"] == 0.5
    assert matched["DETECTED"].tolist() == [True, False]
    s, _, _ = evaluate(cand, tiles, truth, min_truth_snr=1.0)
    assert s["truth"]["n_true_positive"] == 2
