"""Mock Spitzer mosaics (skydetect.sky.spitzer): files like the real ones, the background,
bubbles painted at their WCS pixels, bubbles at the real catalogue's positions."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from bubble_fixtures import CATALOGS, SIM, one_bubble

from skydetect.bubbles import catalog as cat
from skydetect.io import spitzer as sio
from skydetect.sky import spitzer
from skydetect.sky.bubble_mock import UNCLEAR_KINDS


def test_mock_files_look_like_real_ones(field_files):
    d, truth = field_files
    with fits.open(d / "GLM_03000+0000_mosaic_I4.fits") as h:
        assert h[0].header["BUNIT"] == "MJy/sr"
        assert h[0].header["CTYPE1"] == "GLON-CAR"
        assert np.isnan(h[0].data).any()  # saturated cores
    with fits.open(d / "MPG_03000+0000_mosaic_M1.fits") as h:
        assert h[0].header["CTYPE1"] == "GLON-TAN"
        assert sio.pixel_scale_arcsec(h[0].header) == pytest.approx(18.0)
    assert set(truth["KIND"]) <= {"ring", *UNCLEAR_KINDS}
    assert np.all(truth["KIND"][truth["CLEAR"]] == "ring")
    assert np.all(np.abs(cat.wrap_glon(truth["GLON"] - 30)) <= 0.5)


def test_background_rises_towards_the_plane():
    cfg = dict(SIM, width_deg=0.5, height_deg=2.0, pixel_arcsec=20.0)
    i4, m1, _ = spitzer.simulate_field("01500+0000", cfg, seed=2)
    ny = i4.data.shape[0]
    b = (np.arange(ny) - (ny - 1) / 2) * 20 / 3600
    for img in (i4.data, m1.data):
        rows = np.nanmedian(img, axis=1)
        bb = b if img is i4.data else (np.arange(len(rows)) - (len(rows) - 1) / 2) * 30 / 3600
        assert np.median(rows[np.abs(bb) < 0.1]) > 1.5 * np.median(rows[np.abs(bb) > 0.8])


def test_injected_bubble_lands_at_its_wcs_pixel(tmp_path, monkeypatch):
    # no small-scale background structure and no distractors: only geometry is under test
    monkeypatch.setattr(spitzer, "_power_law_field", lambda rng, shape, index=-2.8: np.zeros(shape))
    cfg = dict(
        SIM,
        filaments_per_field=0,
        dark_clouds_per_field=0,
        saturated_per_field=0,
        point_sources_per_deg2=0,
        compact_24um_per_deg2=0,
        pixel_arcsec=8.0,
        strength24_clear=[2.0, 3.0],  # a 24 µm interior well above the ring's own 24 µm
    )
    glon, glat = 30.3, 0.15
    real = one_bubble(glon, glat, maj=2.0)
    i4, m1, truth = spitzer.simulate_field("03000+0000", cfg, seed=1, real=real)
    assert len(truth) == 1
    # independent expectation for CAR centred on (30, 0) with 8" pixels, CDELT1 < 0
    ny, nx = i4.data.shape
    x_exp = (nx - 1) / 2 - 0.3 * 3600 / 8
    y_exp = (ny - 1) / 2 + 0.15 * 3600 / 8
    sio.write_mosaic(tmp_path / "i4.fits", i4)
    sio.write_mosaic(tmp_path / "m1.fits", m1)
    spitzer_field = sio.align_field(tmp_path / "i4.fits", tmp_path / "m1.fits", "03000+0000")
    x, y = cat.bubble_pixels(truth, spitzer_field.wcs)
    assert x[0] == pytest.approx(x_exp, abs=0.01) and y[0] == pytest.approx(y_exp, abs=0.01)
    # the 8 µm ring (radius 2' = 15 px) is brightest on the circle centred on that pixel
    r = 15.0
    phi = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    best, best_score = None, -np.inf
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            xs = np.rint(x_exp + dx + r * np.cos(phi)).astype(int)
            ys = np.rint(y_exp + dy + r * np.sin(phi)).astype(int)
            score = np.mean(spitzer_field.data[1][ys, xs])
            if score > best_score:
                best, best_score = (dx, dy), score
    assert abs(best[0]) <= 1 and abs(best[1]) <= 1
    # the 24 µm interior, after the TAN -> CAR reprojection, peaks there too
    from scipy import ndimage

    sm = ndimage.gaussian_filter(np.nan_to_num(spitzer_field.data[0]), 2.0)
    cut = sm[int(y_exp) - 8 : int(y_exp) + 9, int(x_exp) - 8 : int(x_exp) + 9]
    py, px = np.unravel_index(np.argmax(cut), cut.shape)
    assert abs(int(x_exp) - 8 + px - x_exp) <= 1 and abs(int(y_exp) - 8 + py - y_exp) <= 1


@pytest.mark.catalogs
def test_mock_at_real_catalogue_positions():
    csv = CATALOGS / "mwp_dr2_galactic_plane.csv"
    npy = CATALOGS / "mwp_dr2_clear_bubbles.npy"
    if not (csv.exists() and npy.exists()):
        pytest.skip(f"real catalogues not found in {CATALOGS}")
    real = cat.read_mwp(csv, npy)
    cfg = dict(SIM, positions_from=str(csv), clear_names_from=str(npy))
    _, _, truth = spitzer.simulate_field("03000+0000", cfg, seed=0, real=real)
    inside = (np.abs(real["GLON"] - 30) < 0.5) & (np.abs(real["GLAT"]) < 0.3)
    assert 0 < len(truth) <= inside.sum()
    assert set(truth["MWP"]) <= set(real["MWP"][inside])
    by_name = dict(zip(real["MWP"], real["CLEAR"], strict=True))
    assert all(by_name[n] == c for n, c in zip(truth["MWP"], truth["CLEAR"], strict=True))
    assert np.all(truth["KIND"][truth["CLEAR"]] == "ring")
