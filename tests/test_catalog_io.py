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


# --------------------------------------------------------------------------- value checks
@pytest.mark.parametrize(
    ("column", "value", "row"),
    [("GLON", np.nan, 3), ("GLAT", 91.0, 2), ("GLON", -5.0, 1), ("REDSHIFT", np.inf, 4)],
)
def test_psz2_bad_value_names_file_column_and_row(tmp_path, column, value, row):
    data = _psz2_data()
    data[column] = np.array(data[column], float)
    data[column][row - 1] = value
    path = tmp_path / "psz2.fits"
    catalogs.write_psz2(path, data)
    with pytest.raises(CatalogError) as err:
        catalogs.read_psz2(path)
    msg = str(err.value)
    assert str(path) in msg and repr(column) in msg and f"row {row} " in msg


def test_string_in_numeric_column_names_row(tmp_path):
    path = tmp_path / "mcxc.csv"
    path.write_text(
        "MCXC,GLON,GLAT,RAdeg,DEdeg,z,M500,R500,L500\n"
        "J1,10,20,1,2,0.1,2.0,1.0,1.0\n"
        "J2,11,21,1,2,0.1,big,1.0,1.0\n"
    )
    with pytest.raises(CatalogError, match=r"mcxc.csv: mcxc catalogue column 'M500' row 2: 'big'"):
        catalogs.read_mcxc(path)


def test_non_positive_size_is_refused(tmp_path):
    path = tmp_path / "mcxc.fits"
    catalogs.write_mcxc(
        path,
        {
            "MCXC": ["A", "B"],
            "GLON": [1.0, 2.0],
            "GLAT": [3.0, 4.0],
            "RAdeg": [1.0, 2.0],
            "DEdeg": [1.0, 2.0],
            "z": [0.1, 0.2],
            "M500": [1.0, 2.0],
            "R500": [1.0, 0.0],
            "L500": [1.0, 1.0],
        },
    )
    with pytest.raises(CatalogError, match=r"'R500' must be finite and positive: row 2 is 0.0"):
        catalogs.read_mcxc(path)


# --------------------------------------------------------------------------- real formats
def _pccs2_file(path, glon, glat, flux, extra=None):
    """A file in the PCCS2 / PCCS2E layout (COM_PCCS_<GHz>[-excluded]_R2.01.fits)."""
    n = len(glon)
    names = [f"PCCS2 217 G{lon:06.2f}{lat:+06.2f}" for lon, lat in zip(glon, glat, strict=True)]
    cols = [
        fits.Column("NAME", "23A", array=names),
        fits.Column("GLON", "D", unit="deg", array=glon),
        fits.Column("GLAT", "D", unit="deg", array=glat),
        fits.Column("RA", "D", unit="deg", array=np.zeros(n)),
        fits.Column("DEC", "D", unit="deg", array=np.zeros(n)),
        fits.Column("DETFLUX", "D", unit="mJy", array=flux),
        fits.Column("DETFLUX_ERR", "D", unit="mJy", array=np.ones(n)),
        fits.Column("APERFLUX", "D", unit="mJy", array=flux),
        fits.Column("GAUFLUX", "D", unit="mJy", array=flux),
        fits.Column("EXTENDED", "I", array=np.zeros(n, int)),
        *(extra or []),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="PCCS2_f217")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


@pytest.mark.parametrize(
    ("name", "fmt", "kind"),
    [
        ("COM_PCCS_217_R2.01.fits", "pccs2", "radio"),
        ("COM_PCCS_857-excluded_R2.01.fits", "pccs2e", "ir"),
    ],
)
def test_pccs2_files_read_as_source_catalogues(tmp_path, name, fmt, kind):
    path = _pccs2_file(tmp_path / name, [10.0, 200.0], [5.0, -60.0], [310.0, 1200.0])
    freq = int(name[9:12])
    for format in (None, fmt):
        t = catalogs.read_catalog("sources", path, format=format)
        assert list(t["GLON"]) == [10.0, 200.0] and list(t["GLAT"]) == [5.0, -60.0]
        assert list(t["TYPE"]) == [kind, kind]
        assert list(t[f"FLUX_{freq}"]) == [310.0, 1200.0]
        assert t.meta["format"] == fmt
        assert t["ID"][0].startswith("PCCS2 217 G010.00")


def test_pccs2_bad_position_names_file_column_row(tmp_path):
    path = _pccs2_file(tmp_path / "COM_PCCS_100_R2.01.fits", [10.0, 400.0], [5.0, 6.0], [1.0, 2.0])
    with pytest.raises(CatalogError, match=r"COM_PCCS_100_R2.01.fits: pccs2 catalogue column 'GLON'.*row 2 is 400"):
        catalogs.read_sources(path)


def test_pccs2_without_frequency_is_refused(tmp_path):
    path = _pccs2_file(tmp_path / "my_sources.fits", [10.0], [5.0], [1.0])
    with pytest.raises(CatalogError, match="cannot tell the frequency"):
        catalogs.read_sources(path, format="pccs2")


def test_iras_psc_heasarc_and_vizier_layouts(tmp_path):
    from astropy.coordinates import SkyCoord

    gal = SkyCoord([30.0, 150.0], [1.0, -45.0], unit="deg", frame="galactic")
    fnu = {"FNU_12": [0.25, 1.0], "FNU_25": [0.3, 2.0], "FNU_60": [5.0, 0.4], "FNU_100": [20.0, 1.0]}
    heasarc = Table(
        {"NAME": ["18401-0208", "03000-1200"], "RA": gal.icrs.ra.deg, "DEC": gal.icrs.dec.deg,
         "LII": gal.l.deg, "BII": gal.b.deg, **fnu}
    )
    heasarc.write(tmp_path / "iraspsc.fits")
    vizier = Table(
        {"IRAS": ["18401-0208", "03000-1200"], "RAJ2000": gal.icrs.ra.deg,
         "DEJ2000": gal.icrs.dec.deg, **{k.replace("FNU", "Fnu"): v for k, v in fnu.items()}}
    )
    vizier.write(tmp_path / "ii_125.fits")
    for name in ("iraspsc.fits", "ii_125.fits"):
        t = catalogs.read_sources(tmp_path / name)
        assert t.meta["format"] == "iras_psc"
        np.testing.assert_allclose(t["GLON"], [30.0, 150.0], atol=1e-6)
        np.testing.assert_allclose(t["GLAT"], [1.0, -45.0], atol=1e-6)
        np.testing.assert_allclose(t["FLUX_IRAS60"], [5000.0, 400.0])  # Jy -> mJy
        assert list(t["TYPE"]) == ["ir", "ir"] and t["ID"][0] == "18401-0208"


def test_redmapper_published_layout(tmp_path):
    # redMaPPer SDSS DR8 public catalogue: MEM_MATCH_ID RA DEC Z_LAMBDA Z_LAMBDA_ERR LAMBDA
    # LAMBDA_ERR S Z_SPEC OBJID ... NAME (v6.3); v5.10 spells richness LAMBDA_CHISQ.
    t = Table(
        {"MEM_MATCH_ID": np.array([1, 2], "i4"), "RA": [239.58, 250.08], "DEC": [27.23, 46.71],
         "Z_LAMBDA": np.array([0.094, 0.23], "f4"), "Z_LAMBDA_ERR": np.array([0.005, 0.01], "f4"),
         "LAMBDA_CHISQ": np.array([169.8, 199.6], "f4"), "Z_SPEC": np.array([0.09, -1.0], "f4")}
    )
    t.write(tmp_path / "redmapper_dr8_public_v5.10_catalog.fits")
    r = catalogs.read_redmapper(tmp_path / "redmapper_dr8_public_v5.10_catalog.fits")
    assert list(r["NAME"]) == ["RM1", "RM2"]
    np.testing.assert_allclose(r["LAMBDA"], [169.8, 199.6], rtol=1e-6)
    t["LAMBDA_CHISQ"][1] = -3.0
    t.write(tmp_path / "bad.fits")
    with pytest.raises(CatalogError, match=r"bad.fits: redmapper catalogue column 'LAMBDA'.*row 2"):
        catalogs.read_redmapper(tmp_path / "bad.fits")


def test_mcxc_cds_ascii_table_layout(tmp_path):
    # the CDS file of J/A+A/534/A109 is a FITS ASCII table (TableHDU) with RAdeg/DEdeg
    cols = [
        fits.Column("MCXC", "A12", array=["J0000.1+0816", "J0000.4-0237"]),
        fits.Column("RAdeg", "F7.3", unit="deg", array=[0.03, 0.103]),
        fits.Column("DEdeg", "F7.3", unit="deg", array=[8.274, -2.625]),
        fits.Column("GLON", "F7.3", unit="deg", array=[101.77, 94.27]),
        fits.Column("GLAT", "F7.3", unit="deg", array=[-52.47, -62.62]),
        fits.Column("z", "F6.4", array=[0.1, 0.0379]),
        fits.Column("L500", "F9.6", unit="10+37W", array=[0.3, 0.05]),
        fits.Column("M500", "F7.4", unit="10+14Msun", array=[1.2, 0.36]),
        fits.Column("R500", "F7.4", unit="Mpc", array=[0.7, 0.5]),
    ]
    hdu = fits.TableHDU.from_columns(cols, name="mcxc.dat")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "mcxc.fits")
    m = catalogs.read_mcxc(tmp_path / "mcxc.fits")
    assert list(m["MCXC"]) == ["J0000.1+0816", "J0000.4-0237"]
    np.testing.assert_allclose(m["R500"], [0.7, 0.5])
    # a VizieR FITS export names the positions RAJ2000 / DEJ2000
    v = Table(m)
    v.rename_columns(["RAdeg", "DEdeg"], ["RAJ2000", "DEJ2000"])
    v.write(tmp_path / "vizier.fits")
    np.testing.assert_allclose(catalogs.read_mcxc(tmp_path / "vizier.fits")["RAdeg"], [0.03, 0.103])


def test_unknown_source_format_names_key(tmp_path):
    path = _pccs2_file(tmp_path / "COM_PCCS_100_R2.01.fits", [10.0], [5.0], [1.0])
    with pytest.raises(CatalogError, match="planck.sources_format"):
        catalogs.read_sources(path, format="allwise")


# --------------------------------------------------------------------------- published formats
PUBLISHED_FORMATS = [
    "fits", "fits_gz", "votable", "ecsv", "csv", "tsv", "vizier_tsv", "mrt", "cds_readme",
]  # fmt: skip


def write_as(table: Table, directory: Path, fmt: str) -> Path:
    """``table`` written by astropy as an archive would serve it; returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    if fmt in ("fits", "fits_gz"):
        path = directory / ("catalogue.fits.gz" if fmt == "fits_gz" else "catalogue.fits")
        table.write(path, format="fits")
    elif fmt == "votable":
        path = directory / "catalogue.vot"
        table.write(path, format="votable")
    elif fmt == "ecsv":
        path = directory / "catalogue.ecsv"
        table.write(path, format="ascii.ecsv")
    elif fmt == "csv":
        path = directory / "catalogue.csv"
        table.write(path, format="ascii.csv")
    elif fmt == "tsv":
        path = directory / "catalogue.tsv"
        table.write(path, format="ascii.tab")
    elif fmt == "vizier_tsv":  # comments, names, units, dashes, then the rows
        path = directory / "asu.tsv"
        lines = ["#", "#   VizieR Astronomical Server", "#"]
        lines.append("\t".join(table.colnames))
        lines.append("\t".join(str(table[c].unit or "") for c in table.colnames))
        lines.append("\t".join("-" * max(len(c), 3) for c in table.colnames))
        lines += ["\t".join(str(v) for v in row) for row in table.iterrows()]
        path.write_text("\n".join(lines) + "\n")
    else:  # AAS MRT: the byte-by-byte description in the file; CDS: in the ReadMe beside
        mrt = directory / "catalogue.mrt"
        table = table.copy()
        for name in table.colnames:  # logicals as CDS writes them: T / F
            if table[name].dtype.kind == "b":
                table[name] = np.where(table[name], "T", "F")
        table.write(mrt, format="ascii.mrt")
        if fmt == "mrt":
            return mrt
        text = mrt.read_text().splitlines()
        last_rule = max(i for i, ln in enumerate(text) if ln.startswith("-----"))
        (directory / "ReadMe").write_text("\n".join(text[: last_rule + 1]) + "\n")
        path = directory / "table.dat"  # the name the description gives
        path.write_text("\n".join(text[last_rule + 1 :]) + "\n")
        mrt.unlink()
    return path


def _sample_tables():
    mcxc = Table(
        {"MCXC": ["J0000.1+0816", "J0000.4-0237"], "RAdeg": [0.03, 0.103],
         "DEdeg": [8.274, -2.625], "GLON": [101.77, 94.27], "GLAT": [-52.47, -62.62],
         "z": [0.1, 0.0379], "L500": [0.3, 0.05], "M500": [1.2, 0.36], "R500": [0.7, 0.5]}
    )  # fmt: skip
    psz2 = Table(_psz2_data(2))  # COSMO: True, False (text formats write True/False)
    redmapper = Table(
        {"NAME": ["RMJ1", "RMJ2"], "RA": [239.58, 250.08], "DEC": [27.23, 46.71],
         "Z_LAMBDA": [0.094, 0.23], "LAMBDA": [169.8, 199.6]}
    )  # fmt: skip
    pccs2 = Table(
        {"NAME": ["PCCS2 217 G010.00+05.00", "PCCS2 217 G200.00-60.00"], "GLON": [10.0, 200.0],
         "GLAT": [5.0, -60.0], "DETFLUX": [310.0, 1200.0]}
    )  # fmt: skip
    mwp = Table(
        {"MWP": ["2G0020120-0068213", "2G3599000+0001000"], "GLON": [2.012, 359.9],
         "GLAT": [-0.6821, 0.01], "MajAxis": [0.53, 1.2], "MinAxis": [0.47, 0.9],
         "Reff": [0.5, 1.0], "theta": [26.0, 100.0], "Ecc": [0.44, 0.6]}
    )  # fmt: skip
    return mcxc, psz2, redmapper, pccs2, mwp


@pytest.mark.parametrize("fmt", PUBLISHED_FORMATS)
def test_every_catalogue_reads_in_each_published_format(tmp_path, fmt):
    from skydetect.bubbles.catalog import read_mwp

    mcxc, psz2, redmapper, pccs2, mwp = _sample_tables()
    m = catalogs.read_mcxc(write_as(mcxc, tmp_path / "mcxc", fmt))
    assert list(m["MCXC"]) == list(mcxc["MCXC"])
    np.testing.assert_allclose(m["M500"], mcxc["M500"])
    p = catalogs.read_psz2(write_as(psz2, tmp_path / "psz2", fmt))
    np.testing.assert_allclose(p["REDSHIFT"], psz2["REDSHIFT"], rtol=1e-5)
    assert list(p["NAME"]) == list(psz2["NAME"]) and list(p["COSMO"]) == [True, False]
    r = catalogs.read_redmapper(write_as(redmapper, tmp_path / "rm", fmt))
    np.testing.assert_allclose(r["LAMBDA"], redmapper["LAMBDA"])
    # a PCCS2 list keeps its Planck file name (the channel is read from it); the CDS data file
    # keeps the name its ReadMe gives, so there the IRAS PSC layout stands in
    written = write_as(pccs2, tmp_path / "pccs2", fmt)
    if fmt != "cds_readme":
        named = written.rename(written.with_name("COM_PCCS_217_R2.01" + "".join(written.suffixes)))
        s = catalogs.read_sources(named)
        np.testing.assert_allclose(s["GLAT"], [5.0, -60.0])
        assert list(s["TYPE"]) == ["radio", "radio"] and list(s["FLUX_217"]) == [310.0, 1200.0]
    iras = Table({"NAME": ["18401-0208", "03000-1200"], "LII": [30.0, 150.0], "BII": [1.0, -45.0],
                  "FNU_60": [5.0, 0.4]})  # fmt: skip
    s = catalogs.read_sources(write_as(iras, tmp_path / "iras", fmt))
    assert list(s["ID"]) == ["18401-0208", "03000-1200"] and list(s["TYPE"]) == ["ir", "ir"]
    np.testing.assert_allclose(s["FLUX_IRAS60"], [5000.0, 400.0])
    b = read_mwp(write_as(mwp, tmp_path / "mwp", fmt), np.array(["2G3599000+0001000"]))
    assert list(b["MWP"]) == list(mwp["MWP"]) and list(b["CLEAR"]) == [False, True]
    np.testing.assert_allclose(b["GLON"], [2.012, -0.1], atol=1e-9)  # wrapped to (-180, 180]


def test_psz2_logical_column_from_text(tmp_path):
    psz2 = Table(_psz2_data(3))
    psz2["COSMO"] = ["T", "0", "yes"]
    path = write_as(psz2, tmp_path, "csv")
    assert list(catalogs.read_psz2(path)["COSMO"]) == [True, False, True]
    psz2["COSMO"] = ["T", "maybe", "F"]
    path = write_as(psz2, tmp_path / "bad", "csv")
    with pytest.raises(CatalogError, match=r"catalogue.csv: psz2 catalogue column 'COSMO' row 2: 'maybe'"):
        catalogs.read_psz2(path)


def test_format_is_recognised_from_the_content(tmp_path):
    from skydetect.io.tables import sniff_format

    mcxc = _sample_tables()[0]
    expected = {"fits": "fits", "fits_gz": "fits", "votable": "votable", "ecsv": "ecsv",
                "csv": "csv", "tsv": "tsv", "vizier_tsv": "tsv", "mrt": "cds",
                "cds_readme": "cds"}  # fmt: skip
    for fmt, sniffed in expected.items():
        path = write_as(mcxc, tmp_path / fmt, fmt)
        assert sniff_format(path) == sniffed, fmt
        # a download may carry any name: the content decides
        moved = path.rename(path.with_name("download.csv")) if fmt != "cds_readme" else path
        assert sniff_format(moved) == sniffed, fmt
    (tmp_path / "odd.txt").write_text("just words here\n")
    with pytest.raises(CatalogError, match=r"odd.txt: cannot tell the table format"):
        catalogs.read_mcxc(tmp_path / "odd.txt")
    (tmp_path / "broken.vot").write_text("<?xml version='1.0'?><VOTABLE><RESOURCE>")
    with pytest.raises(CatalogError, match=r"broken.vot: cannot read mcxc catalogue as VOTABLE"):
        catalogs.read_mcxc(tmp_path / "broken.vot")


def test_several_source_catalogues_are_labelled_by_file(tmp_path):
    pccs2 = _sample_tables()[3]
    a = write_as(pccs2, tmp_path / "a", "fits").rename(tmp_path / "a/COM_PCCS_217_R2.01.fits")
    b = write_as(pccs2, tmp_path / "b", "votable").rename(tmp_path / "b/COM_PCCS_857_R2.01.vot")
    tables = catalogs.read_source_catalogs([a, b])
    assert list(tables) == ["COM_PCCS_217_R2.01", "COM_PCCS_857_R2.01"]
    assert list(tables["COM_PCCS_857_R2.01"]["TYPE"]) == ["ir", "ir"]
    assert list(catalogs.read_source_catalogs(str(a))) == ["COM_PCCS_217_R2.01"]
    c = write_as(pccs2, tmp_path / "c", "csv").rename(tmp_path / "c/COM_PCCS_217_R2.01.csv")
    with pytest.raises(CatalogError, match=r"two IR/radio source catalogues are named 'COM_PCCS_217_R2.01'"):
        catalogs.read_source_catalogs([a, c])


@pytest.mark.catalogs
@needs_real
@pytest.mark.parametrize("fmt", ["votable", "csv", "tsv"])
def test_real_catalogues_read_alike_in_other_formats(tmp_path, fmt):
    """The published PSZ2, MCXC and MWP DR2 rewritten as another archive would serve them."""
    from skydetect.bubbles.catalog import read_mwp
    from skydetect.io.tables import read_table  # the published files as they are

    psz2 = catalogs.read_psz2(write_as(read_table(REAL_PSZ2), tmp_path / "psz2", fmt))
    assert len(psz2) == 1653 and (psz2["REDSHIFT"] >= 0).sum() == 1093
    assert psz2["COSMO"].dtype == bool
    assert psz2["COSMO"].sum() == catalogs.read_psz2(REAL_PSZ2)["COSMO"].sum()
    mcxc = catalogs.read_mcxc(write_as(read_table(REAL_MCXC), tmp_path / "mcxc", fmt))
    assert len(mcxc) == 1743 and mcxc["MCXC"][0] == "J0000.1+0816"
    mwp = read_table(REAL / "mwp_dr2_galactic_plane.csv")
    mwp.rename_column(mwp.colnames[0], "MWP")  # the CSV export leaves the name unnamed
    bubbles = read_mwp(write_as(mwp, tmp_path / "mwp", fmt), REAL / "mwp_dr2_clear_bubbles.npy")
    assert len(bubbles) == 2411 and bubbles["CLEAR"].sum() == 624
    assert len(bubbles.meta["unmatched_clear_names"]) == 10
