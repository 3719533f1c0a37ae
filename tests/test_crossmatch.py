"""Cross-match radii, the one-to-one rule and the candidate classes."""

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from skydetect.clusters.crossmatch import (
    class_counts,
    concat_detections,
    crossmatch,
    greedy_match,
    known_catalog,
)
from skydetect.clusters.detect import empty_table, write_table_atomic

CATALOGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs"


def _offset(lon, lat, arcmin, pa_deg=90.0):
    c = SkyCoord(lon * u.deg, lat * u.deg, frame="galactic")
    o = c.directional_offset_by(pa_deg * u.deg, arcmin * u.arcmin)
    return float(o.l.deg), float(o.b.deg)


def _detections(lonlat):
    t = empty_table()
    for i, (lon, lat) in enumerate(lonlat):
        t.add_row((lon, lat, 0.0, 0.0, 0.95, 0.93, 40.0, 4.0, 3, 6 + i % 2))
    return t


def test_greedy_match_is_one_to_one_and_closest_first():
    cat = SkyCoord([10.0], [20.0], unit="deg", frame="galactic")
    a = _offset(10.0, 20.0, 3.0)
    b = _offset(10.0, 20.0, 1.0, pa_deg=0.0)
    coords = SkyCoord([a[0], b[0]], [a[1], b[1]], unit="deg", frame="galactic")
    idx, sep = greedy_match(coords, cat, 7.0)
    # the closer detection (b, 1') takes the cluster; a (3') is left unmatched
    assert idx.tolist() == [-1, 0]
    assert sep[1] == pytest.approx(1.0, abs=1e-6) and np.isnan(sep[0])


def test_greedy_match_resolves_crossed_pairs_globally():
    # two clusters 4' apart, two detections: global closest-first assignment
    c1, c2 = (50.0, 30.0), _offset(50.0, 30.0, 4.0)
    d1 = _offset(*c1, 1.5)  # 1.5' from c1, 2.5' from c2
    d2 = _offset(*c2, 0.5)
    cat = SkyCoord([c1[0], c2[0]], [c1[1], c2[1]], unit="deg", frame="galactic")
    det = SkyCoord([d1[0], d2[0]], [d1[1], d2[1]], unit="deg", frame="galactic")
    idx, _ = greedy_match(det, cat, 7.0)
    assert idx.tolist() == [0, 1]


def test_per_object_radius_and_empty_inputs():
    cat = SkyCoord([0.0, 1.0], [0.0, 0.0], unit="deg", frame="galactic")
    p = _offset(0.0, 0.0, 4.0, pa_deg=0.0)
    q = _offset(1.0, 0.0, 4.0, pa_deg=0.0)
    det = SkyCoord([p[0], q[0]], [p[1], q[1]], unit="deg", frame="galactic")
    idx, _ = greedy_match(det, cat, np.array([5.0, 3.0]))
    assert idx.tolist() == [0, -1]
    empty = SkyCoord([], [], unit="deg", frame="galactic")
    assert greedy_match(empty, cat, 5.0)[0].size == 0
    assert greedy_match(det, empty, 5.0)[0].tolist() == [-1, -1]


def test_crossmatch_radii_classes_and_precedence():
    psz2 = Table({"NAME": ["PSZ2 A", "PSZ2 B"], "GLON": [100.0, 120.0], "GLAT": [40.0, 40.0]})
    mcxc = Table({"NAME": ["MCXC A", "MCXC C"], "GLON": [100.0, 140.0], "GLAT": [40.0, 40.0]})
    sources = Table({"ID": [1, 2], "GLON": [120.0, 160.0], "GLAT": [40.0, 40.0]})
    det = _detections(
        [
            _offset(100.0, 40.0, 6.9),  # PSZ2 A (and MCXC A): known, PSZ2 first
            _offset(120.0, 40.0, 7.1),  # just outside 7' of PSZ2 B; 7.1' from source 1
            _offset(140.0, 40.0, 2.0),  # MCXC C only
            _offset(160.0, 40.0, 4.9),  # 4.9' from source 2: possibly spurious
            (200.0, -40.0),  # nothing near: new
        ]
    )
    cand = crossmatch(det, {"PSZ2": psz2, "MCXC": mcxc}, sources, 7.0, 5.0)
    assert cand["ID"].tolist() == [1, 2, 3, 4, 5]
    assert cand["KNOWN_NAME"].tolist() == ["PSZ2 A", "", "MCXC C", "", ""]
    assert cand["KNOWN_CATALOG"].tolist() == ["PSZ2", "", "MCXC", "", ""]
    assert cand["KNOWN_SEP_ARCMIN"][0] == pytest.approx(6.9, abs=1e-6)
    assert cand["KNOWN_SEP_ARCMIN"].unit == u.arcmin
    assert cand["IR_FLAG"].tolist() == [False, False, False, True, False]
    assert cand["CLASS"].tolist() == ["known", "new", "known", "spurious", "new"]
    assert class_counts(cand) == {"known": 2, "new": 2, "spurious": 1}
    assert "AREA" in cand.colnames and cand["RADIUS"].unit == u.arcmin
    # wider radii change the outcome: detection 2 becomes known (PSZ2 B), 1 is IR-flagged
    wide = crossmatch(det, {"PSZ2": psz2, "MCXC": mcxc}, sources, 7.2, 7.2)
    assert wide["KNOWN_NAME"][1] == "PSZ2 B" and wide["IR_FLAG"][1]


def test_one_detection_per_known_cluster():
    psz2 = Table({"NAME": ["PSZ2 A"], "GLON": [10.0], "GLAT": [50.0]})
    det = _detections([_offset(10.0, 50.0, 2.0), _offset(10.0, 50.0, 1.0, pa_deg=0.0)])
    cand = crossmatch(det, {"PSZ2": psz2}, None)
    assert cand["KNOWN_NAME"].tolist() == ["", "PSZ2 A"]
    assert cand["CLASS"].tolist() == ["new", "known"]


def test_extra_columns_are_kept_and_files_round_trip(tmp_path):
    det = _detections([(10.0, 50.0)])
    det["SNR"] = [5.5]
    cand = crossmatch(det, {}, None)
    assert cand["SNR"][0] == 5.5 and cand["CLASS"][0] == "new"
    for ext in (".fits", ".csv"):
        write_table_atomic(cand, tmp_path / f"c{ext}")
        back = Table.read(tmp_path / f"c{ext}", format="fits" if ext == ".fits" else "ascii.ecsv")
        assert back["RADIUS"].unit == u.arcmin
        assert back["CLASS"][0] == "new"


def test_empty_detections_and_bad_catalogue():
    cand = crossmatch(concat_detections([empty_table(), empty_table()]), {}, None)
    assert len(cand) == 0 and "KNOWN_NAME" in cand.colnames
    with pytest.raises(ValueError, match="MCXC: no column 'GLAT'"):
        known_catalog(Table({"MCXC": ["x"], "GLON": [1.0]}), "MCXC", "MCXC")
    bad = _detections([(1.0, 2.0)])
    bad.remove_column("PEAK_PROB")
    with pytest.raises(ValueError, match="PEAK_PROB"):
        crossmatch(bad, {}, None)


@pytest.mark.catalogs
@pytest.mark.skipif(not CATALOGS.is_dir(), reason="../shared/data/catalogs is absent")
def test_real_psz2_positions_match_themselves():
    psz2 = Table.read(CATALOGS / "HFI_PCCS_SZ-union_R2.08.fits")
    known = known_catalog(psz2, "NAME", "PSZ2")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(known), 50, replace=False)
    det = _detections(
        [_offset(known["GLON"][i], known["GLAT"][i], 3.0, rng.uniform(0, 360)) for i in pick]
    )
    cand = crossmatch(det, {"PSZ2": known}, None)
    # every shifted position finds a PSZ2 cluster within 7' (its own one, or a closer one)
    assert (cand["CLASS"] == "known").all()
    assert np.nanmax(cand["KNOWN_SEP_ARCMIN"]) <= 3.0 + 1e-6
    assert len(set(cand["KNOWN_NAME"])) == 50


def test_flags_against_several_source_catalogues_name_each_catalogue():
    pccs = Table({"ID": ["P1", "P2"], "GLON": [30.0, 50.0], "GLAT": [20.0, 20.0]})
    iras = Table({"ID": ["I1", "I2"], "GLON": [40.0, 50.0], "GLAT": [20.0, 20.0]})
    det = _detections(
        [
            _offset(30.0, 20.0, 2.0),  # PCCS only
            _offset(40.0, 20.0, 3.0),  # IRAS only
            _offset(50.0, 20.0, 1.0),  # both (1' from each: same position)
            _offset(60.0, 20.0, 1.0),  # neither
        ]
    )
    sources = {"COM_PCCS_857_R2.01": pccs, "iraspsc": iras}
    cand = crossmatch(det, {}, sources, 7.0, 5.0)
    assert cand["IR_FLAG"].tolist() == [True, True, True, False]
    assert cand["IR_CATALOG"].tolist() == [
        "COM_PCCS_857_R2.01", "iraspsc", "COM_PCCS_857_R2.01,iraspsc", ""
    ]  # fmt: skip
    assert cand["IR_SOURCE"].tolist()[:2] == ["P1", "I1"] and cand["IR_SOURCE"][3] == ""
    assert cand["IR_SEP_ARCMIN"][1] == pytest.approx(3.0, abs=1e-6)
    assert cand["CLASS"].tolist() == ["spurious", "spurious", "spurious", "new"]
    assert cand.meta["SRCCAT"] == "COM_PCCS_857_R2.01,iraspsc"
    # one catalogue alone flags only its own sources
    alone = crossmatch(det, {}, {"iraspsc": iras}, 7.0, 5.0)
    assert alone["IR_FLAG"].tolist() == [False, True, True, False]
    assert alone["IR_CATALOG"].tolist() == ["", "iraspsc", "iraspsc", ""]
