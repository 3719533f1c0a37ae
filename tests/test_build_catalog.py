"""Training catalogues: nesting, merging of duplicates, real files, bad input."""

from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from skydetect.clusters import catalogs as C
from skydetect.io.catalogs import CatalogError, write_mcxc, write_psz2, write_redmapper

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs"


@pytest.fixture()
def files(tmp_path):
    # PSZ2: 4 with z, 2 without; MCXC: one duplicate of a PSZ2 entry (2' away), one new,
    # and a close pair of new ones (1' apart); redMaPPer: lambda 20, 40, 60 (one duplicate).
    psz = {
        "NAME": [f"P{i}" for i in range(6)],
        "GLON": [10.0, 50.0, 100.0, 200.0, 300.0, 359.9],
        "GLAT": [20.0, -30.0, 60.0, -60.0, 10.0, 45.0],
        "REDSHIFT": [0.1, 0.2, 0.3, 0.4, -1.0, -1.0],
        "MSZ": [5.0, 4.0, 6.0, 3.0, 0.0, 0.0],
        "SNR": [9.0, 8.0, 7.0, 6.0, 5.0, 4.5],
    }
    write_psz2(tmp_path / "psz2.fits", psz)
    mcxc = {
        "MCXC": ["M0", "M1", "M2", "M3"],
        "GLON": [10.0 + 2 / 60 / np.cos(np.radians(20)), 150.0, 250.0, 250.0],
        "GLAT": [20.0, 5.0, -5.0, -5.0 + 1 / 60],
        "RAdeg": [0.0] * 4,
        "DEdeg": [0.0] * 4,
        "z": [0.1, 0.05, 0.2, 0.2],
        "R500": [1.0, 0.8, 1.1, 1.1],
        "M500": [3.0, 1.0, 2.0, 2.0],
        "L500": [1.0] * 4,
    }
    write_mcxc(tmp_path / "mcxc.fits", mcxc)
    gal = SkyCoord([120.0, 130.0, 50.0], [40.0, -40.0, -30.0], unit="deg", frame="galactic")
    write_redmapper(
        tmp_path / "rm.fits",
        {
            "NAME": ["R0", "R1", "R2"],
            "RA": gal.icrs.ra.deg,
            "DEC": gal.icrs.dec.deg,
            "Z_LAMBDA": [0.3, 0.3, 0.2],
            "LAMBDA": [20.0, 40.0, 60.0],
        },
    )
    return {
        "psz2": tmp_path / "psz2.fits",
        "mcxc": tmp_path / "mcxc.fits",
        "redmapper": tmp_path / "rm.fits",
    }


def test_nested_catalogues(files):
    cats = {n: C.build_catalog(n, files, 5.0) for n in C.CATALOG_NAMES}
    assert list(cats["planck_z"]["NAME"]) == ["P0", "P1", "P2", "P3"]
    assert len(cats["planck_no-z"]) == 6 and np.isnan(cats["planck_no-z"]["Z"][4])
    # MCXC: M0 duplicates P0 (kept once, as P0); of the close pair M2/M3 one is kept
    assert sorted(cats["MCXC"]["NAME"]) == ["M1", "M2", "P0", "P1", "P2", "P3", "P4", "P5"]
    assert sorted(cats["RM30"]["NAME"]) == sorted([*cats["MCXC"]["NAME"], "R1"])  # R2 = P1
    assert sorted(cats["RM50"]["NAME"]) == sorted(cats["MCXC"]["NAME"])
    for a, b in zip(C.CATALOG_NAMES[:-2], C.CATALOG_NAMES[1:-1], strict=True):
        assert set(cats[a]["NAME"]) <= set(cats[b]["NAME"])
    assert list(cats["MCXC"].colnames) == list(C.COLUMNS)
    assert set(cats["RM30"]["ORIGIN"]) == {"PSZ2", "MCXC", "RM"}


def test_theta500_physics():
    # R500 = 1 Mpc at z = 0.1 (D_A ~ 390 Mpc for Planck18) is ~8.8 arcmin
    t = C.theta500_from_r500(1.0, 0.1)
    assert 8.0 < float(t) < 9.5
    # the mass route: larger mass -> larger theta, farther -> smaller
    t1, t2, t3 = C.theta500_from_m500([3.0, 6.0, 3.0], [0.2, 0.2, 0.5])
    assert t2 > t1 > t3 and np.isclose(t2 / t1, 2 ** (1 / 3), rtol=1e-6)
    assert np.isnan(C.theta500_from_m500(0.0, 0.2))


def test_dedupe_keeps_one_of_a_close_pair():
    t = Table(
        {"GLON": [10.0, 10.0 + 1 / 60, 80.0], "GLAT": [0.0, 0.0, 0.0], "NAME": ["a", "b", "c"]}
    )
    assert list(C.dedupe(t, 5.0)["NAME"]) == ["a", "c"]
    assert list(C.dedupe(t, 0.5)["NAME"]) == ["a", "b", "c"]


def test_missing_column_is_named(tmp_path):
    write_psz2(
        tmp_path / "p.fits",
        {"NAME": ["a"], "GLON": [1.0], "GLAT": [2.0], "REDSHIFT": [0.1], "MSZ": [3.0]},
    )
    from astropy.io import fits

    with fits.open(tmp_path / "p.fits") as h:
        cols = [c for c in h[1].columns if c.name != "REDSHIFT"]
        fits.BinTableHDU.from_columns(cols).writeto(tmp_path / "bad.fits")
    with pytest.raises(CatalogError, match="REDSHIFT"):
        C.build_catalog("planck_z", {"psz2": tmp_path / "bad.fits"})
    with pytest.raises(CatalogError, match="needs the mcxc catalogue"):
        C.build_catalog("MCXC", {"psz2": tmp_path / "p.fits"})
    with pytest.raises(CatalogError, match="unknown training catalogue 'RM10'"):
        C.needed_inputs("RM10")


def test_round_trip_ecsv(files, tmp_path):
    cat = C.build_catalog("MCXC", files)
    C.write_catalog(cat, tmp_path / "MCXC.ecsv")
    back = C.read_training_catalog(tmp_path / "MCXC.ecsv")
    assert list(back["NAME"]) == list(cat["NAME"])
    assert np.allclose(back["GLON"], cat["GLON"])


@pytest.mark.catalogs
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/catalogs is absent")
def test_real_psz2_and_mcxc():
    paths = {"psz2": REAL / "HFI_PCCS_SZ-union_R2.08.fits", "mcxc": REAL / "mcxc.fits"}
    z = C.build_catalog("planck_z", paths)
    noz = C.build_catalog("planck_no-z", paths)
    mc = C.build_catalog("MCXC", paths, merge_radius_arcmin=5.0)
    assert len(z) == 1093 and len(noz) == 1653
    assert 1653 < len(mc) < 1653 + 1743
    med = np.nanmedian(z["THETA500"])
    assert 3.0 < med < 8.0  # PSZ2 clusters are a few arcmin in size
    # a larger merge radius merges more MCXC objects into PSZ2 entries
    assert len(C.build_catalog("MCXC", paths, merge_radius_arcmin=10.0)) < len(mc)


def test_empty_planck_z_stops_with_the_key(tmp_path):
    write_psz2(
        tmp_path / "psz2.fits",
        {
            "NAME": ["A", "B"],
            "GLON": [1.0, 2.0],
            "GLAT": [30.0, 40.0],
            "REDSHIFT": [-1.0, -1.0],
            "SNR": [5.0, 6.0],
        },
    )
    with pytest.raises(CatalogError, match=r"'planck_z' \(clusters.catalog.name\) is empty"):
        C.build_catalog("planck_z", {"psz2": tmp_path / "psz2.fits"})
    assert len(C.build_catalog("planck_no-z", {"psz2": tmp_path / "psz2.fits"})) == 2


def test_no_cluster_in_training_tiles_stops_at_build_catalog(files):
    import healpy as hp

    cat = C.build_catalog("planck_z", files, 5.0)
    tiles = hp.ang2pix(2, np.asarray(cat["GLON"]), np.asarray(cat["GLAT"]), lonlat=True)
    counts = C.check_training_coverage(cat, range(48), "planck_z")
    assert sum(counts.values()) == len(cat) and counts[int(tiles[0])] >= 1
    others = sorted(set(range(48)) - set(tiles.tolist()))
    with pytest.raises(CatalogError, match=r"none in the training tiles.*clusters.tiles.validation"):
        C.check_training_coverage(cat, others, "planck_z")
