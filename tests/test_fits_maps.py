"""PR3-layout map files: writing, reading with healpy/astropy, checks and conversions."""

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from skydetect.io.fits_maps import (
    MapFormatError,
    read_and_check,
    read_checked_map,
    write_checked_map,
    write_pr3_map,
)

NSIDE = 16


@pytest.fixture
def ring_map():
    m = np.random.default_rng(1).normal(0.0, 1e-4, hp.nside2npix(NSIDE))
    m[:10] = np.arange(10) * 1e-5  # distinct values where RING and NESTED differ
    return m


def _edit_header(path, **cards):
    with fits.open(path, mode="update") as hdul:
        for key, value in cards.items():
            if value is None:
                del hdul[1].header[key]
            else:
                hdul[1].header[key] = value


def test_pr3_layout_reads_back_with_healpy_and_astropy(tmp_path, ring_map):
    path = tmp_path / "HFI_SkyMap_100-field-IQU_2048_R3.00_full.fits"
    write_pr3_map(path, ring_map, "K_CMB")
    with fits.open(path) as hdul:
        h = hdul[1].header
        assert isinstance(hdul[1], fits.BinTableHDU)
        assert h["TTYPE1"] == "I_STOKES" and h["TUNIT1"] == "K_CMB"
        assert h["ORDERING"] == "NESTED" and h["COORDSYS"] == "GALACTIC"
        assert h["PIXTYPE"] == "HEALPIX" and h["NSIDE"] == NSIDE
        assert h["FIRSTPIX"] == 0 and h["LASTPIX"] == 12 * NSIDE**2 - 1
        assert h["INDXSCHM"] == "IMPLICIT"
        stored = np.asarray(hdul[1].data["I_STOKES"]).ravel()
    # the file really is NESTED: its raw data is the reordered map
    np.testing.assert_allclose(stored, hp.reorder(ring_map, r2n=True), rtol=1e-6)
    # healpy honours ORDERING and gives back the RING map
    np.testing.assert_allclose(hp.read_map(str(path), nest=False), ring_map, rtol=1e-6)


def test_nested_float64_is_converted_and_recorded(tmp_path, ring_map):
    path = tmp_path / "m.fits"
    write_pr3_map(path, ring_map, "K_CMB", ordering="NESTED", dtype=np.float64)
    m, report = read_and_check(path, "100", nside=NSIDE)
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, ring_map.astype(np.float32), rtol=1e-6)
    assert report["ordering_found"] == "NESTED" and report["dtype_found"] == "float64"
    assert "NESTED -> RING" in report["conversions"]
    assert "float64 -> float32" in report["conversions"]
    assert report["unit"] == "K_CMB" and report["nside"] == NSIDE


def test_ring_float32_needs_no_conversion(tmp_path, ring_map):
    path = tmp_path / "m.fits"
    sky = (ring_map * 1e4).astype(np.float32)  # ~1 MJy/sr, as a 545 GHz map
    write_pr3_map(path, sky, "MJy/sr", ordering="RING")
    m, report = read_and_check(path, "545")
    np.testing.assert_allclose(m, sky)
    assert report["conversions"] == []


def test_scaled_unit_is_converted(tmp_path, ring_map):
    path = tmp_path / "m.fits"
    write_pr3_map(path, ring_map * 1e6, "uK_CMB")
    m, report = read_and_check(path, "143")
    np.testing.assert_allclose(m, ring_map, rtol=1e-5, atol=1e-12)
    assert report["unit"] == "K_CMB" and report["unit_found"] == "uK_CMB"
    assert any("x1e-06" in c for c in report["conversions"])


@pytest.mark.parametrize(
    ("cards", "keyword"),
    [
        ({"NSIDE": 32}, "NSIDE"),
        ({"COORDSYS": "ECLIPTIC"}, "COORDSYS"),
        ({"COORDSYS": None}, "COORDSYS"),
        ({"ORDERING": "SPIRAL"}, "ORDERING"),
        ({"ORDERING": None}, "ORDERING"),
        ({"TUNIT1": "MJy/sr"}, "TUNIT1"),
        ({"PIXTYPE": "CAR"}, "PIXTYPE"),
    ],
)
def test_bad_header_names_file_and_keyword(tmp_path, ring_map, cards, keyword):
    path = tmp_path / "bad.fits"
    write_pr3_map(path, ring_map, "K_CMB")
    _edit_header(path, **cards)
    with pytest.raises(MapFormatError) as err:
        read_and_check(path, "100")
    assert str(path) in str(err.value) and keyword in str(err.value)


def test_nside_different_from_config(tmp_path, ring_map):
    path = tmp_path / "m.fits"
    write_pr3_map(path, ring_map, "K_CMB")
    with pytest.raises(MapFormatError, match=r"NSIDE = 16 in the header, but config key .planck.nside. is 2048"):
        read_and_check(path, "100", nside=2048)


def test_missing_column_is_named(tmp_path, ring_map):
    path = tmp_path / "m.fits"
    col = fits.Column(name="Q_STOKES", format="E", unit="K_CMB", array=ring_map)
    hdu = fits.BinTableHDU.from_columns([col])
    hdu.header.update(PIXTYPE="HEALPIX", ORDERING="RING", COORDSYS="GALACTIC", NSIDE=NSIDE)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    with pytest.raises(MapFormatError, match="I_STOKES") as err:
        read_and_check(path, "100")
    assert str(path) in str(err.value)


def test_wrong_length_and_not_a_table(tmp_path, ring_map):
    path = tmp_path / "short.fits"
    write_pr3_map(path, ring_map, "K_CMB", ordering="RING")
    with fits.open(path) as hdul:
        short = fits.BinTableHDU(hdul[1].data[:-5], header=hdul[1].header)
        fits.HDUList([fits.PrimaryHDU(), short]).writeto(tmp_path / "s2.fits")
    with pytest.raises(MapFormatError, match="NSIDE = 16 implies 3072 pixels"):
        read_and_check(tmp_path / "s2.fits", "100")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4)))]).writeto(tmp_path / "i.fits")
    with pytest.raises(MapFormatError, match="BINTABLE"):
        read_and_check(tmp_path / "i.fits", "100")
    with pytest.raises(MapFormatError, match="not found"):
        read_and_check(tmp_path / "absent.fits", "100")


def test_nan_and_unseen_fraction(tmp_path, ring_map):
    m = ring_map.copy()
    m[:100] = np.nan
    m[100:150] = hp.UNSEEN
    path = tmp_path / "holes.fits"
    write_pr3_map(path, m, "K_CMB")
    out, report = read_and_check(path, "100")
    assert report["n_nan"] == 100 and report["n_unseen"] == 50
    assert report["bad_fraction"] == pytest.approx(150 / m.size)
    assert np.all(out[:150] == np.float32(hp.UNSEEN))  # NaN -> UNSEEN, healpy's convention
    assert np.all(np.isfinite(out))
    with pytest.raises(MapFormatError, match="NaN/UNSEEN"):
        read_and_check(path, "100", max_bad_fraction=0.01)


def test_y_map_without_unit_is_accepted_only_for_y(tmp_path, ring_map):
    path = tmp_path / "y.fits"
    write_pr3_map(path, ring_map * 1e-2, "y")
    _edit_header(path, TUNIT1=None)
    _, report = read_and_check(path, "y")
    assert report["unit"] == "y" and any("assumed" in c for c in report["conversions"])
    with pytest.raises(MapFormatError, match="TUNIT1"):
        read_and_check(path, "100")


def test_checked_map_layout(tmp_path, ring_map):
    path = tmp_path / "checked.fits"
    write_checked_map(path, ring_map, "K_CMB")
    with fits.open(path) as hdul:
        h = hdul[1].header
        assert h["ORDERING"] == "RING" and h["COORDSYS"] == "GALACTIC"
        assert h["TUNIT1"] == "K_CMB" and h["TFORM1"].endswith("E")
    m = hp.read_map(str(path))
    np.testing.assert_allclose(m, ring_map.astype(np.float32))
    m2, info = read_checked_map(path, unit="K_CMB")
    assert m2.dtype == np.float32 and info["nside"] == NSIDE
    with pytest.raises(MapFormatError, match="TUNIT1"):
        read_checked_map(path, unit="MJy/sr")
    nested = tmp_path / "nested.fits"
    write_pr3_map(nested, ring_map, "K_CMB")
    with pytest.raises(MapFormatError, match="ORDERING"):
        read_checked_map(nested)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_truncated_payload_is_named(tmp_path, ring_map):
    path = tmp_path / "cut.fits"
    write_pr3_map(path, ring_map, "K_CMB")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a download cut in half
    with pytest.raises(MapFormatError) as err:
        read_and_check(path, "100")
    assert str(path) in str(err.value) and "truncated" in str(err.value)


@pytest.mark.parametrize("value", [0.0, 2.7])
def test_constant_map_is_refused(tmp_path, value):
    path = tmp_path / "flat.fits"
    m = np.full(hp.nside2npix(NSIDE), value)
    m[:5] = hp.UNSEEN  # a few bad pixels do not hide it
    write_pr3_map(path, m, "K_CMB")
    with pytest.raises(MapFormatError, match=r"flat.fits: column I_STOKES is (constant|all zero)"):
        read_and_check(path, "100")


def test_bare_kelvin_is_refused_with_the_expected_spelling(tmp_path, ring_map):
    path = tmp_path / "k.fits"
    write_pr3_map(path, ring_map, "K")
    with pytest.raises(MapFormatError) as err:
        read_and_check(path, "143")
    msg = str(err.value)
    assert str(path) in msg and "TUNIT1 = 'K'" in msg and "ambiguous" in msg and "K_CMB" in msg


@pytest.mark.parametrize("unit", ["", "y", "Y_SZ", "y_sz", "Compton-y", "compton-Y", "none", "NONE"])
def test_y_map_dimensionless_spellings(tmp_path, ring_map, unit):
    path = tmp_path / "y.fits"
    write_pr3_map(path, ring_map * 1e-2, unit)
    m, report = read_and_check(path, "y")
    assert report["unit"] == "y"
    np.testing.assert_allclose(m, (ring_map * 1e-2).astype(np.float32))


@pytest.mark.parametrize("unit", ["K_CMB", "uK_CMB", "MJy/sr", "K"])
def test_temperature_or_intensity_unit_on_y_is_refused(tmp_path, ring_map, unit):
    path = tmp_path / "y.fits"
    write_pr3_map(path, ring_map * 1e-2, unit)
    with pytest.raises(MapFormatError) as err:
        read_and_check(path, "y")
    msg = str(err.value)
    assert str(path) in msg and "column I_STOKES" in msg and "Compton-y" in msg


def test_dimensionless_unit_on_a_frequency_band_is_refused(tmp_path, ring_map):
    path = tmp_path / "f.fits"
    write_pr3_map(path, ring_map, "none")
    with pytest.raises(MapFormatError, match=r"TUNIT1 = 'none' for column I_STOKES, expected 'K_CMB'"):
        read_and_check(path, "100")
