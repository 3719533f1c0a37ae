"""Spitzer mosaics (skydetect.io.spitzer): field names, pixel scales, the 24 µm mosaic
reprojected onto the 8 µm grid (Galactic tiles and any celestial mosaic pair), refusals."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from bubble_fixtures import PP, one_bubble

from skydetect.bubbles import catalog as cat
from skydetect.bubbles.preprocess import preprocess_windows
from skydetect.io import spitzer as sio


def test_field_names_round_trip():
    assert sio.field_name(15) == "01500+0000"
    assert sio.field_name(-1.5) == "35850+0000"
    assert sio.field_center("35850+0000") == (-1.5, 0.0)
    assert sio.glimpse_filename("01500+0000") == "GLM_01500+0000_mosaic_I4.fits"
    assert sio.mipsgal_filename("01500+0000") == "MPG_01500+0000_mosaic_M1.fits"
    with pytest.raises(sio.SpitzerError, match="GLIMPSE tile code"):
        sio.field_center("l015")


def test_pixel_scale_from_cdelt_cd_pixscal():
    w, _ = sio.field_wcs(15, 0, 1, 1, 1.2)
    assert sio.pixel_scale_arcsec(w.to_header()) == pytest.approx(1.2)
    h = fits.Header(
        {
            "CTYPE1": "GLON-CAR",
            "CTYPE2": "GLAT-CAR",
            "CD1_1": -2 / 3600,
            "CD2_2": 2 / 3600,
            "CD1_2": 0.0,
            "CD2_1": 0.0,
        }
    )
    assert sio.pixel_scale_arcsec(h) == pytest.approx(2.0)
    assert sio.pixel_scale_arcsec(fits.Header({"PIXSCAL1": -0.6})) == pytest.approx(0.6)
    with pytest.raises(sio.SpitzerError, match="mosaic.fits.*pixel scale unknown"):
        sio.pixel_scale_arcsec(fits.Header({"CTYPE1": "GLON-CAR"}), "mosaic.fits")


def test_align_reprojects_a_smooth_24um_field(tmp_path):
    w8, shape8 = sio.field_wcs(15, 0, 0.5, 0.4, 10.0)
    w24, shape24 = sio.field_wcs(15, 0, 0.6, 0.5, 17.0, projection="TAN")
    yy, xx = np.mgrid[: shape24[0], : shape24[1]]
    lon, lat = w24.pixel_to_world_values(xx, yy)
    m24 = (10 + 5 * sio.wrap_glon(lon) + 20 * lat).astype(np.float32)  # linear in l, b
    i8 = (1.0 + 0.01 * np.arange(shape8[1]) * np.ones(shape8)).astype(np.float32)
    for name, data, w in (("i4.fits", i8, w8), ("m1.fits", m24, w24)):
        h = w.to_header()
        h["BUNIT"] = "MJy/sr"
        fits.PrimaryHDU(data, header=h).writeto(tmp_path / name)
    spitzer_field = sio.align_field(tmp_path / "i4.fits", tmp_path / "m1.fits", "01500+0000")
    yy, xx = np.mgrid[: shape8[0], : shape8[1]]
    lon, lat = w8.pixel_to_world_values(xx, yy)
    expected = 10 + 5 * sio.wrap_glon(lon) + 20 * lat
    np.testing.assert_allclose(spitzer_field.data[0], expected, atol=2e-3)
    np.testing.assert_array_equal(spitzer_field.data[1], i8)


def test_align_rejects_wrong_unit(tmp_path):
    w8, shape8 = sio.field_wcs(15, 0, 0.2, 0.2, 10.0)
    h = w8.to_header()
    h["BUNIT"] = "Jy/beam"
    fits.PrimaryHDU(np.ones(shape8, np.float32), header=h).writeto(tmp_path / "i4.fits")
    with pytest.raises(sio.SpitzerError, match="i4.fits.*BUNIT"):
        sio.align_field(tmp_path / "i4.fits", tmp_path / "i4.fits", "01500+0000")


def _equatorial_pair(tmp_path, with_24=True):
    """A small LMC-like pair in RA/Dec: 8 µm on a TAN grid, 24 µm on a coarser rotated one."""
    from astropy.wcs import WCS

    def wcs(n, pix_arcsec, rot_deg=0.0):
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [80.9, -69.75]
        w.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]
        c, s_ = np.cos(np.deg2rad(rot_deg)), np.sin(np.deg2rad(rot_deg))
        p = pix_arcsec / 3600
        w.wcs.cd = [[-p * c, p * s_], [p * s_, p * c]]
        return w

    w8, w24 = wcs(120, 6.0), wcs(70, 12.0, rot_deg=20.0)
    yy, xx = np.mgrid[:70, :70]
    ra, dec = w24.pixel_to_world_values(xx, yy)
    m24 = (5 + 30 * (ra - 80.9) + 40 * (dec + 69.75)).astype(np.float32)  # linear on the sky
    paths = {}
    i8 = (3.0 + 0.01 * np.mgrid[:120, :120][0]).astype(np.float32)  # a gentle gradient
    for name, data, w in (("i8", i8, w8), ("m24", m24, w24)):
        if name == "m24" and not with_24:
            continue
        h = w.to_header()
        h["BUNIT"] = "MJy/sr"
        paths[name] = tmp_path / f"{name}.fits"
        fits.PrimaryHDU(data, header=h).writeto(paths[name])
    return paths, w8


def test_any_mosaic_pair_is_reprojected_onto_the_8um_grid(tmp_path):
    paths, w8 = _equatorial_pair(tmp_path)
    field = sio.align_field(paths["i8"], paths["m24"], "LMC")
    assert field.field == "LMC" and field.pixel_arcsec == pytest.approx(6.0)
    yy, xx = np.mgrid[:120, :120]
    ra, dec = w8.pixel_to_world_values(xx, yy)
    expected = 5 + 30 * (ra - 80.9) + 40 * (dec + 69.75)
    from scipy import ndimage

    ok = np.isfinite(field.data[0])
    assert ok.mean() > 0.5  # the rotated 24 µm grid covers most of the 8 µm one
    inner = ndimage.binary_erosion(ok, iterations=3)  # away from the 24 µm grid's edge
    np.testing.assert_allclose(field.data[0][inner], expected[inner], atol=0.02)
    sio.write_field(tmp_path / "aligned.fits", field)
    again = sio.read_field(tmp_path / "aligned.fits")
    np.testing.assert_array_equal(again.data, field.data)
    # catalogue positions (Galactic) land on an equatorial field's pixels via SkyCoord
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    g = SkyCoord(ra[60, 30] * u.deg, dec[60, 30] * u.deg, frame="icrs").galactic
    x, y = cat.bubble_pixels(one_bubble(g.l.deg, g.b.deg), again.wcs)
    assert x[0] == pytest.approx(30, abs=1e-3) and y[0] == pytest.approx(60, abs=1e-3)


def test_8um_only_field_has_an_empty_24um_channel(tmp_path):
    paths, _ = _equatorial_pair(tmp_path, with_24=False)
    field = sio.align_field(paths["i8"], None, "NGC628")
    assert np.isnan(field.data[0]).all() and np.isfinite(field.data[1]).all()
    x = preprocess_windows(field.data, [0, 40], [0, 40], [60, 80], **PP)
    np.testing.assert_array_equal(x[..., 0], 0.0)


def test_mosaic_without_celestial_wcs_is_refused(tmp_path):
    h = fits.Header({"CTYPE1": "PIXEL", "CTYPE2": "PIXEL", "BUNIT": "MJy/sr", "CDELT1": 1.0})
    fits.PrimaryHDU(np.ones((10, 10), np.float32), header=h).writeto(tmp_path / "x.fits")
    with pytest.raises(sio.SpitzerError, match="x.fits.*celestial WCS"):
        sio.align_field(tmp_path / "x.fits", None, "X")
