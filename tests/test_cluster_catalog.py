"""The published cluster catalogue: names, coordinates, redshift precedence, the optional
P_REAL / mask inputs, FITS and CSV round trips with units, and the IR flag's chance rate."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from skydetect.clusters import cluster_catalog as cc
from skydetect.clusters import ir_flag
from skydetect.clusters.detect import write_table_atomic
from skydetect.clusters.mmf.photometry import COLUMNS as PHOT
from skydetect.geometry import tiles


# ------------------------------------------------------------------------------ names
@pytest.mark.parametrize(
    "glon, glat, name",
    [
        (123.456, 67.894, "SKYD G123.46+67.89"),
        (5.0, -3.2, "SKYD G005.00-03.20"),
        (0.123, 0.004, "SKYD G000.12+00.00"),
        (10.0, -0.004, "SKYD G010.00-00.00"),  # south of the plane, rounds to zero
        (359.996, 45.0, "SKYD G000.00+45.00"),  # 360.00 wraps
        (-1.0, 89.999, "SKYD G359.00+90.00"),
    ],
)
def test_names_round_and_keep_the_sign(glon, glat, name):
    assert cc.cluster_names([glon], [glat])[0] == name


def test_name_prefix():
    assert cc.cluster_names([1.0], [2.0], prefix="PSZX")[0] == "PSZX G001.00+02.00"


# ------------------------------------------------------------------------------ matches
def known_tables():
    psz2 = Table({"NAME": ["PSZ2 A", "PSZ2 B"], "GLON": [10.0, 20.0], "GLAT": [30.0, 30.0],
                  "REDSHIFT": [-1.0, 0.3]})  # fmt: skip
    mcxc = Table({"MCXC": ["MCXC A", "MCXC C"], "GLON": [10.01, 40.0], "GLAT": [30.0, 30.0],
                  "z": [0.12, 0.2]})  # fmt: skip
    rm_pos = SkyCoord([10.0, 20.0, 40.0, 50.0] * u.deg, [30.0] * 4 * u.deg, frame="galactic").icrs
    rm = Table({"NAME": ["RM A", "RM B", "RM C", "RM D"], "RA": rm_pos.ra.deg,
                "DEC": rm_pos.dec.deg, "Z_LAMBDA": [0.5, 0.6, 0.7, 0.8]})  # fmt: skip
    return {
        "psz2": cc.known_table("psz2", psz2),
        "mcxc": cc.known_table("mcxc", mcxc),
        "redmapper": cc.known_table("redmapper", rm),
    }


CANDS = SkyCoord([10.02, 20.0, 40.0, 50.0, 60.0] * u.deg, [30.0] * 5 * u.deg, frame="galactic")


def test_redshift_precedence_and_sources():
    m = cc.match_known(CANDS, known_tables(), 7.0)
    assert list(m["psz2"][0]) == ["PSZ2 A", "PSZ2 B", "", "", ""]
    assert list(m["redmapper"][0]) == ["RM A", "RM B", "RM C", "RM D", ""]
    z, src = cc.redshifts(m, ["psz2", "mcxc", "redmapper"])
    # A: PSZ2 without redshift (-1) -> MCXC; B: PSZ2; C: MCXC before RM; D: RM only; none
    np.testing.assert_allclose(z, [0.12, 0.3, 0.2, 0.8, np.nan])
    assert list(src) == ["MCXC", "PSZ2", "MCXC", "RM", ""]
    z, src = cc.redshifts(m, ["redmapper", "psz2"])
    np.testing.assert_allclose(z, [0.5, 0.6, 0.7, 0.8, np.nan])
    assert list(src) == ["RM", "RM", "RM", "RM", ""]
    # a catalogue not available (no file) is skipped
    z, src = cc.redshifts({k: m[k] for k in ("redmapper",)}, ["psz2", "redmapper"])
    assert list(src) == ["RM", "RM", "RM", "RM", ""]
    with pytest.raises(cc.CatalogBuildError, match="redshift_precedence.*act"):
        cc.redshifts(m, ["act"])


def photometry(n, seed=0):
    rng = np.random.default_rng(seed)
    return {c: rng.uniform(0.5, 5.0, n) for c in PHOT}


def build(cands=None, **kw):
    coords = CANDS if cands is None else cands
    table = Table({"GLON": coords.l.deg, "GLAT": coords.b.deg,
                   "PEAK_PROB": np.linspace(0.9, 1.0, len(coords))})  # fmt: skip
    m = cc.match_known(coords, known_tables(), 7.0)
    return cc.build_catalog(table, "unet_hfi", photometry(len(coords)), m,
                            np.arange(len(coords)) % 2 == 0, **kw)  # fmt: skip


def test_catalogue_columns_coordinates_and_defaults():
    t = build()
    assert t.colnames == list(cc.COLUMNS)
    icrs = CANDS.icrs
    np.testing.assert_allclose(t["RA"], icrs.ra.deg, atol=1e-9)
    np.testing.assert_allclose(t["DEC"], icrs.dec.deg, atol=1e-9)
    assert t["RA"].unit == u.deg and t["Y5R500"].unit == u.arcmin**2
    assert t["POS_ERR"].unit == u.arcmin and t["THETA500_ERR"].unit == u.arcmin
    assert np.isnan(t["P_REAL"]).all()
    assert not t["MASK_GAL"].any() and not t["MASK_PS"].any()
    assert list(t["DETECTORS"]) == ["unet"] * 5
    assert list(t["TILE"]) == list(tiles.tile_of(CANDS.l.deg, CANDS.b.deg))
    assert list(t["MATCH_MCXC"]) == ["MCXC A", "", "MCXC C", "", ""]


def test_p_real_and_masks_fill_their_columns_and_are_checked():
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    gal = np.array([True, False, False, False, True])
    t = build(p_real=p, mask_gal=gal, mask_ps=~gal)
    np.testing.assert_allclose(t["P_REAL"], p)
    assert list(t["MASK_GAL"]) == list(gal) and list(t["MASK_PS"]) == list(~gal)
    with pytest.raises(cc.CatalogBuildError, match="P_REAL"):
        build(p_real=p[:3])


def test_mmf_only_entries_have_nan_peak_prob():
    table = Table({"GLON": [10.0], "GLAT": [30.0], "SNR": [6.0]})
    m = cc.match_known(CANDS[:1], known_tables(), 7.0)
    t = cc.build_catalog(table, "mmf", photometry(1), m, [False])
    assert np.isnan(t["PEAK_PROB"][0]) and t["DETECTORS"][0] == "mmf"


@pytest.mark.parametrize("suffix", [".fits", ".csv"])
def test_round_trip_keeps_values_and_units(tmp_path, suffix):
    t = build(p_real=np.full(5, 0.5))
    path = tmp_path / f"cat{suffix}"
    write_table_atomic(t, path)
    back = Table.read(path, format="fits" if suffix == ".fits" else "ascii.ecsv")
    assert back.colnames == t.colnames
    for col in t.colnames:
        assert back[col].unit == t[col].unit, col
        if t[col].dtype.kind in "fi":
            np.testing.assert_allclose(back[col], t[col], equal_nan=True, err_msg=col)
        else:  # empty strings (no match) read back masked
            filled = back[col].filled("") if hasattr(back[col], "filled") else back[col]
            assert [str(v) for v in filled] == [str(v) for v in t[col]], col
    assert back.meta["DETECTOR"] == "unet_hfi"


def test_empty_candidates_give_an_empty_catalogue(tmp_path):
    empty = SkyCoord([] * u.deg, [] * u.deg, frame="galactic")
    t = build(empty)
    assert len(t) == 0 and t.colnames == list(cc.COLUMNS)
    write_table_atomic(t, tmp_path / "e.fits")
    assert len(Table.read(tmp_path / "e.fits")) == 0


# ------------------------------------------------------------------------------ IR flag
def sources():
    return {
        "a": Table({"ID": [1, 2, 3], "GLON": [10.0, 20.0, 40.0], "GLAT": [30.0, 30.0, 30.0],
                    "TYPE": ["ir", "ir", "radio"], "FLUX_857": [2000.0, 100.0, 5000.0] * u.mJy}),
        "b": Table({"ID": [1], "GLON": [50.0], "GLAT": [30.0], "TYPE": ["ir"],
                    "FLUX_IRAS100": [9e3]}),
    }  # fmt: skip


def test_ir_flag_uses_bright_ir_sources_only():
    ir = ir_flag.bright_ir_sources(sources(), "FLUX_857", 1000.0)
    assert len(ir) == 1  # the faint IR source, the radio source and table b's are not used
    assert list(ir_flag.ir_flags(CANDS, ir, 5.0)) == [True, False, False, False, False]
    with pytest.raises(ir_flag.IRFlagError, match="FLUX_999"):
        ir_flag.bright_ir_sources(sources(), "FLUX_999", 1.0)


def test_chance_rate_on_a_hand_built_field_equals_its_expectation():
    """Sources in one tile, caps not overlapping each other nor the tile edge: the chance
    rate is their total cap area over the tile's area (4 pi / 48)."""
    tile = 6
    lon0, lat0 = tiles_centre(tile)
    offs = np.array([-2.0, 0.0, 2.0])
    ir = SkyCoord((lon0 + offs) * u.deg, np.full(3, lat0) * u.deg, frame="galactic")
    radius = 30.0  # arcmin
    assert np.all(tiles.tile_of(ir.l.deg, ir.b.deg) == tile)
    cap = 2 * np.pi * (1 - np.cos(np.radians(radius / 60)))
    expected = 3 * cap / (4 * np.pi / tiles.N_TILES)
    res = ir_flag.chance_rate([tile], ir, radius, n=40000, seed=1)
    assert res["n_random"] == 40000 and res["n_sources"] == 3
    assert res["rate"] == pytest.approx(expected, abs=3 * res["rate_err"])
    # a second tile without sources halves it
    res2 = ir_flag.chance_rate([tile, tile + 1], ir, radius, n=40000, seed=2)
    assert res2["rate"] == pytest.approx(expected / 2, abs=3 * res2["rate_err"])


def tiles_centre(tile):
    import healpy as hp

    lon, lat = hp.pix2ang(tiles.TILE_NSIDE, tile, lonlat=True)
    return float(lon), float(lat)


def test_random_positions_lie_in_their_tiles():
    pos = ir_flag.random_positions([0, 19], 2000, np.random.default_rng(0))
    got = tiles.tile_of(pos.l.deg, pos.b.deg)
    assert set(got) == {0, 19} and len(pos) == 2000
    assert 0.4 < np.mean(got == 0) < 0.6  # equal-area tiles


def test_combined_keeps_its_detectors_column():
    table = Table({"GLON": [10.0, 20.0], "GLAT": [30.0, 30.0], "PEAK_PROB": [0.95, np.nan],
                   "SNR": [5.0, 6.0], "DETECTORS": ["both", "mmf"], "ID": [1, 2]})  # fmt: skip
    m = cc.match_known(CANDS[:2], known_tables(), 7.0)
    t = cc.build_catalog(table, "combined", photometry(2), m, [False, False])
    assert list(t["DETECTORS"]) == ["both", "mmf"] and np.isnan(t["PEAK_PROB"][1])


def test_photometry_rows_are_aligned_by_id():
    cands = Table({"ID": [3, 1, 2]})
    phot = Table({"ID": [1, 3], **{c: [1.0, 3.0] for c in PHOT}})
    got = cc.align_photometry(cands, phot)
    np.testing.assert_allclose(got["SNR"], [3.0, 1.0, np.nan])
    with pytest.raises(cc.CatalogBuildError, match="ID appears twice"):
        cc.align_photometry(cands, Table({"ID": [1, 1], **{c: [1.0, 1.0] for c in PHOT}}))
