"""Bubble catalogue (skydetect.bubbles.catalog): Galactic longitudes, the ECSV round trip,
reading the MWP DR2 table and its clear-bubble list."""

from __future__ import annotations

import numpy as np
import pytest
from bubble_fixtures import CATALOGS

from skydetect.bubbles import catalog as cat


def test_wrap_glon_negative_longitudes():
    np.testing.assert_allclose(cat.wrap_glon([359.5, 0.5, 180.0, 181.0]), [-0.5, 0.5, 180, -179])


def test_catalog_round_trip_and_errors(tmp_path, truth):
    cat.write_catalog(tmp_path / "c.ecsv", truth)
    back = cat.read_catalog(tmp_path / "c.ecsv")
    assert list(back["MWP"]) == list(truth["MWP"])
    np.testing.assert_allclose(back["MajAxis"], truth["MajAxis"])
    assert back["CLEAR"].dtype == bool
    bad = tmp_path / "bad.csv"
    bad.write_text(",GLON,GLAT,MajAxis\nX,1,0,0.5\n")
    with pytest.raises(cat.CatalogError, match="bad.csv.*MinAxis"):
        cat.read_mwp(bad)


def test_unmatched_clear_names_are_reported(tmp_path, caplog):
    csv = tmp_path / "mwp.csv"
    csv.write_text(
        ",GLON,GLAT,MajAxis,MinAxis,Reff,theta,Ecc\n"
        "2G0100000+0000000,10,0,0.5,0.4,0.45,10,0.5\n"
        "2G0200000+0000000,20,0,0.5,0.4,0.45,10,0.5\n"
    )
    names = np.array(["2G0200000+0000000", "2G0990000+0000000", "2G0980000+0000000"])
    with caplog.at_level("WARNING", logger="skydetect.bubbles.catalog"):
        t = cat.read_mwp(csv, names)
    assert list(t["CLEAR"]) == [False, True]
    assert t.meta["unmatched_clear_names"] == ["2G0980000+0000000", "2G0990000+0000000"]
    assert "2 of 3 clear bubble names match no row of" in caplog.text
    assert "2G0980000+0000000, 2G0990000+0000000" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="skydetect.bubbles.catalog"):
        t = cat.read_mwp(csv, names[:1])
    assert t.meta["unmatched_clear_names"] == [] and "match no row" not in caplog.text


@pytest.mark.catalogs
def test_read_real_mwp_dr2(caplog):
    csv = CATALOGS / "mwp_dr2_galactic_plane.csv"
    npy = CATALOGS / "mwp_dr2_clear_bubbles.npy"
    if not (csv.exists() and npy.exists()):
        pytest.skip(f"real catalogues not found in {CATALOGS}")
    with caplog.at_level("WARNING", logger="skydetect.bubbles.catalog"):
        t = cat.read_mwp(csv, npy)
    assert len(t) == 2411
    assert t.colnames[:8] == cat.COLUMNS
    assert str(t["MWP"][0]) == "2G0020120-0068213"
    glon = np.asarray(t["GLON"])
    assert glon.max() <= 180 and (glon < 0).sum() > 500  # the fourth quadrant is negative l
    assert 1 <= np.abs(glon).min() and np.abs(glon).max() <= 65.5
    # the clear list has 634 names; 10 of them match no row of DR2, and the reader says which
    assert t["CLEAR"].sum() == 624
    unmatched = t.meta["unmatched_clear_names"]
    assert len(unmatched) == 10 and "2G0074127+0068943" in unmatched
    assert "10 of 634 clear bubble names match no row" in caplog.text
    assert np.median(t["MajAxis"]) == pytest.approx(0.73, abs=0.01)
    assert np.all(t["Reff"] > 0)
