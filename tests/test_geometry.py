"""Patch geometry: against astropy WCS, reproject and healpy, at any latitude."""

import healpy as hp
import numpy as np
import pytest
from reproject import reproject_from_healpix

from skydetect.geometry import projection, tiles

CENTRES = [
    (0.0, 0.0, 0.0, False),
    (359.95, 30.0, 25.0, True),
    (0.02, -45.0, -70.0, False),
    (123.4, 89.7, 10.0, False),
    (250.0, -89.9, 135.0, True),
]


@pytest.mark.parametrize("glon,glat,angle,flip", CENTRES)
def test_patch_lonlat_equals_wcs(glon, glat, angle, flip):
    size, pix = 32, 1.7
    lon, lat = projection.patch_lonlat(glon, glat, size, pix, angle, flip)
    w = projection.patch_wcs(glon, glat, size, pix, angle, flip)
    y, x = np.mgrid[0:size, 0:size]
    c = w.pixel_to_world(x, y)
    dl = ((c.l.deg - lon + 180) % 360 - 180) * np.cos(np.radians(lat))
    assert np.max(np.abs(dl)) < 1e-9
    assert np.max(np.abs(c.b.deg - lat)) < 1e-9
    # and the inverse: lonlat_to_patch recovers the pixel grid
    px, py = projection.lonlat_to_patch(lon, lat, glon, glat, size, pix, angle, flip)
    assert np.allclose(px, x, atol=1e-7) and np.allclose(py, y, atol=1e-7)
    wx, wy = w.world_to_pixel(c)
    assert np.allclose(wx, x, atol=1e-7) and np.allclose(wy, y, atol=1e-7)


def test_orientation_l_left_b_up_centre_between_pixels():
    lon, lat = projection.patch_lonlat(100.0, 10.0, 64, 1.7)
    assert lon[32, 0] > lon[32, 63]  # l increases to the left
    assert lat[63, 32] > lat[0, 32]  # b increases upwards (row index)
    # centre between the two middle pixels: pixels 31 and 32 symmetric about the centre
    assert np.isclose(lat[31, 31] + lat[32, 32], 2 * 10.0, atol=1e-4)
    assert np.isclose(lon[31, 31] + lon[32, 32], 2 * 100.0, atol=1e-4)
    # pixel spacing is the pixel size (gnomonic: 1.7' at the centre)
    sep = hp.rotator.angdist([lon[32, 31], lat[32, 31]], [lon[32, 32], lat[32, 32]], lonlat=True)
    assert np.isclose(np.degrees(sep[0]) * 60, 1.7, rtol=1e-4)


def test_vectorised_matches_scalar():
    gl = np.array([10.0, 200.0, 359.0])
    gb = np.array([0.0, -60.0, 88.0])
    ang = np.array([0.0, 45.0, 190.0])
    fl = np.array([False, True, False])
    lon, lat = projection.patch_lonlat(gl, gb, 16, 3.0, ang, fl)
    assert lon.shape == (3, 16, 16)
    for i in range(3):
        li, bi = projection.patch_lonlat(gl[i], gb[i], 16, 3.0, ang[i], fl[i])
        assert np.allclose(lon[i], li) and np.allclose(lat[i], bi)


def _full_tile(m, nside):
    """A Tile object covering the whole sky (for tests)."""
    pix = np.arange(hp.nside2npix(nside))
    return tiles.Tile(0, nside, 180.0, pix, np.ones(pix.size, bool), {"a": m.astype(np.float32)})


@pytest.mark.parametrize("glon,glat,angle,flip", CENTRES)
def test_patch_equals_reproject_nearest(glon, glat, angle, flip):
    nside, size, pix = 256, 24, 9.0
    rng = np.random.default_rng(3)
    m = rng.normal(size=hp.nside2npix(nside)).astype(np.float32)
    tile = _full_tile(m, nside)
    patch = tile.cut_patches(glon, glat, ["a"], size, pix, angle, flip)[0, ..., 0]
    w = projection.patch_wcs(glon, glat, size, pix, angle, flip)
    ref, footprint = reproject_from_healpix(
        (m, "galactic"), w, shape_out=(size, size), order="nearest-neighbor", nested=False
    )
    assert footprint.all()
    assert np.max(np.abs(patch - ref)) < 1e-6


@pytest.mark.parametrize(
    "lon0,lat0", [(0.0, 0.0), (359.99, 20.0), (0.01, -30.0), (180.0, 89.8), (45.0, -89.8)]
)
@pytest.mark.parametrize("angle,flip", [(0.0, False), (33.0, True)])
def test_point_lands_on_expected_pixel(lon0, lat0, angle, flip):
    """A Gaussian blob at a known (l, b) lands at the pixel given by the WCS (+-0.5 px)."""
    nside, size, pix = 1024, 48, 1.7
    m = np.zeros(hp.nside2npix(nside), np.float32)
    v0 = hp.ang2vec(lon0, lat0, lonlat=True)
    disc = hp.query_disc(nside, v0, np.radians(0.5))
    d = np.arccos(np.clip(np.dot(np.array(hp.pix2vec(nside, disc)).T, v0), -1, 1))
    m[disc] = np.exp(-0.5 * (np.degrees(d) * 60 / 5.0) ** 2)
    # patch centre offset by (+9, -6) pixels in the tangent plane of the point
    cl, cb = projection.offset_lonlat(lon0, lat0, 9 * pix / 60, -6 * pix / 60)
    patch = _full_tile(m, nside).cut_patches(cl, cb, ["a"], size, pix, angle, flip)[0, ..., 0]
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy = (patch * xx).sum() / patch.sum(), (patch * yy).sum() / patch.sum()
    w = projection.patch_wcs(float(cl), float(cb), size, pix, angle, flip)
    from astropy.coordinates import SkyCoord

    ex, ey = w.world_to_pixel(SkyCoord(lon0, lat0, unit="deg", frame="galactic"))
    assert abs(cx - ex) < 0.5 and abs(cy - ey) < 0.5
    px, py = projection.lonlat_to_patch(lon0, lat0, cl, cb, size, pix, angle, flip)
    assert abs(px - ex) < 1e-6 and abs(py - ey) < 1e-6
    if angle == 0.0 and not flip and abs(lat0) < 60:
        # centre moved +9 px towards +l: the point is right of it (near the poles the
        # patch axes follow the meridian of the centre, not of the point)
        c = (size - 1) / 2
        assert abs(ex - (c + 9)) < 0.05 and abs(ey - (c + 6)) < 0.05


def test_offset_lonlat_is_tangent_plane_shift():
    # a shift along +xi at high latitude moves by the right angular distance, not by dl
    l1, b1 = projection.offset_lonlat(30.0, 80.0, 1.0, 0.0)
    sep = np.degrees(hp.rotator.angdist([30.0, 80.0], [float(l1), float(b1)], lonlat=True)[0])
    assert np.isclose(sep, np.degrees(np.arctan(np.radians(1.0))), rtol=1e-9)
    assert float(l1) > 30.0


def test_far_side_point_is_nan():
    x, y = projection.lonlat_to_patch(180.0, 0.0, 0.0, 0.0, 64, 1.7)
    assert np.isnan(x) and np.isnan(y)
