"""Catalogue layouts: writers, readers, required columns, and the real files' layouts."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skydetect.io import catalogs
from skydetect.io.catalogs import CatalogError

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs"
REAL_PSZ2 = REAL / "HFI_PCCS_SZ-union_R2.08.fits"
REAL_MCXC = REAL / "mcxc.fits"
needs_real = pytest.mark.skipif(
    not REAL_PSZ2.exists(), reason="real catalogues not present in ../shared/data/catalogs/"
)


def _psz2_data(n=5):
    rng = np.random.default_rng(0)
    return {
        "NAME": np.array([f"PSZ2 G{i:06.2f}+10.00" for i in range(n)]),
        "GLON": rng.uniform(0, 360, n),
        "GLAT": rng.uniform(-90, 90, n),
        "RA": rng.uniform(0, 360, n),
        "DEC": rng.uniform(-90, 90, n),
        "SNR": rng.uniform(4.5, 20, n),
        "PIPELINE": np.ones(n, int),
        "Y5R500": rng.uniform(1, 5, n),
        "REDSHIFT": np.array([0.1, -1.0, 0.3, -1.0, 0.5])[:n],
        "MSZ": rng.uniform(2, 8, n),
        "MCXC": np.array(["J0000.1+0816", "", "", "", ""])[:n],
        "REDMAPPER": np.array(["", "RMJ000001.0+000001.0", "", "", ""])[:n],
        "COSMO": np.array([True, False, True, False, True])[:n],
    }


def test_psz2_round_trip_has_the_union_layout(tmp_path):
    path = tmp_path / "psz2_union.fits"
    data = _psz2_data()
    catalogs.write_psz2(path, data)
    with fits.open(path) as hdul:
        assert hdul[1].header["EXTNAME"] == "PSZ2_UNION"
        assert hdul[1].columns.names == [c[0] for c in catalogs.PSZ2_COLUMNS]
        assert hdul[1].columns["Y5R500"].unit == "10^-3 arcmin^2"
    t = catalogs.read_psz2(path)
    for col in catalogs.REQUIRED["psz2"]:
        assert col in t.colnames
    np.testing.assert_allclose(t["REDSHIFT"], data["REDSHIFT"], rtol=1e-6)
    assert list(t["MCXC"]) == list(data["MCXC"])  # unicode, stripped
    assert list(t["INDEX"]) == [1, 2, 3, 4, 5]
    assert t["COSMO"].dtype == bool and list(t["COSMO"]) == list(data["COSMO"])


@needs_real
def test_mock_psz2_layout_matches_the_real_file(tmp_path):
    path = tmp_path / "psz2_union.fits"
    catalogs.write_psz2(path, _psz2_data())
    with fits.open(path) as mock, fits.open(REAL_PSZ2) as real:
        for a, b in zip(mock[1].columns, real[1].columns, strict=True):
            assert (a.name, a.format, a.unit) == (b.name, b.format, b.unit)


@needs_real
def test_read_real_psz2_and_mcxc():
    t = catalogs.read_psz2(REAL_PSZ2)
    assert len(t) == 1653
    assert (t["REDSHIFT"] >= 0).sum() == 1093  # planck_z / planck_no-z split
    assert np.median(t["Y5R500"]) == pytest.approx(2.3, abs=0.1)
    m = catalogs.read_mcxc(REAL_MCXC)
    assert len(m) == 1743
    assert np.median(m["M500"]) == pytest.approx(1.8, abs=0.1)
    assert m["MCXC"][0] == "J0000.1+0816"


def test_mcxc_redmapper_sources_round_trip(tmp_path):
    n = 3
    mcxc = {
        "MCXC": np.array(["J0000.1+0816", "J0000.4-0237", "J0001.6-1540"]),
        "RAdeg": [0.03, 0.10, 0.40],
        "DEdeg": [8.27, -2.62, -15.6],
        "GLON": [101.8, 94.3, 75.3],
        "GLAT": [-52.5, -62.6, -73.9],
        "z": [0.04, 0.04, 0.12],
        "L500": [0.2, 0.05, 0.9],
        "M500": [0.74, 0.33, 1.66],
        "R500": [0.63, 0.48, 0.8],
    }
    catalogs.write_mcxc(tmp_path / "mcxc.fits", mcxc)
    t = catalogs.read_mcxc(tmp_path / "mcxc.fits")
    np.testing.assert_allclose(t["M500"], mcxc["M500"])
    with fits.open(tmp_path / "mcxc.fits") as hdul:  # the units of the real MCXC file
        assert hdul[1].columns["M500"].unit == "10+14Msun"
        assert hdul[1].columns["R500"].unit == "Mpc"
    rm = {
        "NAME": np.array(["RMJ1", "RMJ2", "RMJ3"]),
        "RA": [1, 2, 3],
        "DEC": [4, 5, 6],
        "Z_LAMBDA": [0.1, 0.2, 0.3],
        "LAMBDA": [25.0, 35.0, 55.0],
    }
    catalogs.write_redmapper(tmp_path / "rm.fits", rm)
    t = catalogs.read_redmapper(tmp_path / "rm.fits")
    assert (t["LAMBDA"] > 30).sum() == 2 and len(t) == n
    src = Table(
        {
            "ID": [1, 2],
            "GLON": [1.0, 2.0],
            "GLAT": [3.0, 4.0],
            "TYPE": ["ir", "radio"],
            "FLUX_545": [500.0, 10.0],
        }
    )
    catalogs.write_sources(tmp_path / "sources.ecsv", src)
    t = catalogs.read_catalog("sources", tmp_path / "sources.ecsv")
    assert list(t["TYPE"]) == ["ir", "radio"]


@pytest.mark.parametrize("name", ["psz2", "mcxc", "redmapper", "sources"])
def test_missing_column_names_file_and_column(tmp_path, name):
    cols = list(catalogs.REQUIRED[name])
    dropped = cols[1]
    t = Table({c: (["a", "b"] if c in ("NAME", "MCXC", "TYPE") else [1.0, 2.0]) for c in cols})
    t.remove_column(dropped)
    path = tmp_path / (f"{name}.ecsv" if name == "sources" else f"{name}.fits")
    t.write(path, format="ascii.ecsv" if name == "sources" else "fits")
    with pytest.raises(CatalogError) as err:
        catalogs.read_catalog(name, path)
    assert str(path) in str(err.value) and repr(dropped) in str(err.value)


def test_column_names_are_matched_case_insensitively(tmp_path):
    t = Table({"name": ["RMJ1"], "ra": [1.0], "dec": [2.0], "z_lambda": [0.2], "lambda": [40.0]})
    t.write(tmp_path / "rm.fits")
    out = catalogs.read_redmapper(tmp_path / "rm.fits")
    assert out.colnames == ["NAME", "RA", "DEC", "Z_LAMBDA", "LAMBDA"]


def test_bad_files(tmp_path):
    with pytest.raises(CatalogError, match="not found"):
        catalogs.read_psz2(tmp_path / "absent.fits")
    (tmp_path / "junk.fits").write_text("not a fits file")
    with pytest.raises(CatalogError, match="junk.fits"):
        catalogs.read_mcxc(tmp_path / "junk.fits")
    src = Table({"ID": [1], "GLON": [1.0], "GLAT": [3.0], "TYPE": ["star"]})
    src.write(tmp_path / "s.ecsv")
    with pytest.raises(CatalogError, match="TYPE"):
        catalogs.read_sources(tmp_path / "s.ecsv")
    with pytest.raises(CatalogError, match="unknown catalogue"):
        catalogs.read_catalog("abell", tmp_path / "s.ecsv")
