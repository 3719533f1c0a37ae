"""Bubble data side: mock mosaics, catalogue, masks, negatives, windows, preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from conftest import schema_defaults

from skydetect.bubbles import catalog as cat
from skydetect.bubbles.crops import BubbleCrops, augment, crop_geometry, flip_boxes, rotate_boxes
from skydetect.bubbles.masks import disc_mask, mask_discs, mask_field
from skydetect.bubbles.negative_groups import (
    class_table,
    group_windows,
    window_features,
    write_group_table,
)
from skydetect.bubbles.negatives import (
    negatives_for_field,
    read_negatives,
    sample_windows,
    size_fit_bubbles,
    write_negatives,
)
from skydetect.bubbles.preprocess import preprocess_window, preprocess_windows
from skydetect.bubbles.windows import (
    field_to_input,
    field_truth,
    input_to_field,
    make_windows,
    positions,
    read_windows,
    sliding_windows,
    write_windows,
)
from skydetect.io import spitzer as sio
from skydetect.sky import spitzer
from skydetect.sky.bubble_mock import UNCLEAR_KINDS

CATALOGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs"
PP = dict(input_size=48, clip_sigma=3.0, point_source_nsigma=5.0, point_source_filter_px=5)

SIM = dict(
    schema_defaults("bubbles", "simulate"),
    pixel_arcsec=12.0,
    width_deg=1.0,
    height_deg=0.6,
    density_factor=2.0,  # ~23 bubbles (~6 clear) on the 1° x 0.6° field
    min_majaxis_arcmin=0.6,
    max_majaxis_arcmin=4.0,
    saturated_per_field=30,  # ~3 on the 1° x 0.6° test field
)


def _one_bubble(glon, glat, maj=2.0, clear=True, kind="ring"):
    t = Table()
    t["MWP"] = ["TEST1"]
    t["GLON"], t["GLAT"] = [glon], [glat]
    t["MajAxis"], t["MinAxis"], t["Reff"] = [maj], [maj], [maj]
    t["theta"], t["Ecc"] = [0.0], [0.0]
    t["CLEAR"] = [clear]
    return t


@pytest.fixture(scope="module")
def field_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("spitzer")
    i4, m1, truth = spitzer.simulate_field("03000+0000", SIM, seed=3)
    sio.write_mosaic(d / sio.glimpse_filename("03000+0000"), i4)
    sio.write_mosaic(d / sio.mipsgal_filename("03000+0000"), m1)
    tile = sio.align_field(
        d / sio.glimpse_filename("03000+0000"),
        d / sio.mipsgal_filename("03000+0000"),
        "03000+0000",
    )
    sio.write_field(d / "aligned.fits", tile)
    cat.write_catalog(d / "truth.ecsv", truth)
    return d, truth


@pytest.fixture(scope="module")
def tile(field_files):
    return sio.read_field(field_files[0] / "aligned.fits")


@pytest.fixture(scope="module")
def truth(field_files):
    return cat.read_catalog(field_files[0] / "truth.ecsv")


# ------------------------------------------------------------------ names, headers, catalogue
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


# ------------------------------------------------------------------ mock mosaics and alignment
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
    real = _one_bubble(glon, glat, maj=2.0)
    i4, m1, truth = spitzer.simulate_field("03000+0000", cfg, seed=1, real=real)
    assert len(truth) == 1
    # independent expectation for CAR centred on (30, 0) with 8" pixels, CDELT1 < 0
    ny, nx = i4.data.shape
    x_exp = (nx - 1) / 2 - 0.3 * 3600 / 8
    y_exp = (ny - 1) / 2 + 0.15 * 3600 / 8
    sio.write_mosaic(tmp_path / "i4.fits", i4)
    sio.write_mosaic(tmp_path / "m1.fits", m1)
    tile = sio.align_field(tmp_path / "i4.fits", tmp_path / "m1.fits", "03000+0000")
    x, y = cat.bubble_pixels(truth, tile.wcs)
    assert x[0] == pytest.approx(x_exp, abs=0.01) and y[0] == pytest.approx(y_exp, abs=0.01)
    # the 8 µm ring (radius 2' = 15 px) is brightest on the circle centred on that pixel
    r = 15.0
    phi = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    best, best_score = None, -np.inf
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            xs = np.rint(x_exp + dx + r * np.cos(phi)).astype(int)
            ys = np.rint(y_exp + dy + r * np.sin(phi)).astype(int)
            score = np.mean(tile.data[1][ys, xs])
            if score > best_score:
                best, best_score = (dx, dy), score
    assert abs(best[0]) <= 1 and abs(best[1]) <= 1
    # the 24 µm interior, after the TAN -> CAR reprojection, peaks there too
    from scipy import ndimage

    sm = ndimage.gaussian_filter(np.nan_to_num(tile.data[0]), 2.0)
    cut = sm[int(y_exp) - 8 : int(y_exp) + 9, int(x_exp) - 8 : int(x_exp) + 9]
    py, px = np.unravel_index(np.argmax(cut), cut.shape)
    assert abs(int(x_exp) - 8 + px - x_exp) <= 1 and abs(int(y_exp) - 8 + py - y_exp) <= 1


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
    tile = sio.align_field(tmp_path / "i4.fits", tmp_path / "m1.fits", "01500+0000")
    yy, xx = np.mgrid[: shape8[0], : shape8[1]]
    lon, lat = w8.pixel_to_world_values(xx, yy)
    expected = 10 + 5 * sio.wrap_glon(lon) + 20 * lat
    np.testing.assert_allclose(tile.data[0], expected, atol=2e-3)
    np.testing.assert_array_equal(tile.data[1], i8)


def test_align_rejects_wrong_unit(tmp_path):
    w8, shape8 = sio.field_wcs(15, 0, 0.2, 0.2, 10.0)
    h = w8.to_header()
    h["BUNIT"] = "Jy/beam"
    fits.PrimaryHDU(np.ones(shape8, np.float32), header=h).writeto(tmp_path / "i4.fits")
    with pytest.raises(sio.SpitzerError, match="i4.fits.*BUNIT"):
        sio.align_field(tmp_path / "i4.fits", tmp_path / "i4.fits", "01500+0000")


# ------------------------------------------------------------------ masks
def test_masked_discs_are_nan_and_nothing_else_changes(tile, truth):
    original = tile.data.copy()
    masked, mask = mask_field(tile, truth, radius_reff=0.25, clear_only=True)
    np.testing.assert_array_equal(tile.data, original)  # input untouched
    assert np.all(np.isnan(masked.data[:, mask]))
    np.testing.assert_array_equal(masked.data[:, ~mask], original[:, ~mask])
    # every clear bubble's centre pixel is masked; an unclear bubble's centre is not, unless it
    # lies in a clear bubble's disc; nothing is masked away from every clear centre
    x, y = cat.bubble_pixels(truth, tile.wcs)
    clear = np.asarray(truth["CLEAR"], bool)
    r_px = 0.25 * np.asarray(truth["Reff"], float) * 60 / tile.pixel_arcsec
    inside = (np.floor(x + 0.5) >= 0) & (np.floor(x + 0.5) < tile.shape[1])
    inside &= (np.floor(y + 0.5) >= 0) & (np.floor(y + 0.5) < tile.shape[0])
    assert (inside & clear).sum() >= 2 and (inside & ~clear).sum() >= 2
    for i in np.flatnonzero(inside):
        xc, yc = int(np.floor(x[i] + 0.5)), int(np.floor(y[i] + 0.5))
        near_clear = np.hypot(x[clear] - xc, y[clear] - yc) <= r_px[clear] + 1.5
        if clear[i]:
            assert mask[yc, xc], i
        elif not near_clear.any():
            assert not mask[yc, xc], i
    yy, xx = np.nonzero(mask)
    d = np.hypot(xx[:, None] - x[clear][None], yy[:, None] - y[clear][None]) - r_px[clear][None]
    assert d.min(axis=1).max() <= 1.0  # every masked pixel is within a clear disc (+1 px)


def test_default_mask_covers_every_catalogue_bubble(tile, truth):
    masked, mask = mask_field(tile, truth)  # default: clear and unclear
    np.testing.assert_array_equal(masked.mask, mask)
    x, y = cat.bubble_pixels(truth, tile.wcs)
    n_unclear = 0
    for xi, yi, clear in zip(x, y, truth["CLEAR"], strict=True):
        xc, yc = int(np.floor(xi + 0.5)), int(np.floor(yi + 0.5))
        if 0 <= xc < tile.shape[1] and 0 <= yc < tile.shape[0]:
            assert mask[yc, xc]
            n_unclear += not clear
    assert n_unclear > 0  # the test field has unclear bubbles, and they are masked
    _, clear_mask = mask_field(tile, truth, clear_only=True)
    assert clear_mask.sum() < mask.sum()


def test_disc_radius():
    m = disc_mask((50, 50), 20.0, 25.0, 6.0)
    assert m[25, 26] and m[25, 20 + 6] and not m[25, 20 + 7] and not m[25 + 7, 20]
    assert m.sum() == pytest.approx(np.pi * 36, rel=0.15)
    tiny = disc_mask((10, 10), 3.2, 4.4, 0.1)
    assert tiny.sum() == 1 and tiny[4, 3]
    out, _ = mask_discs(np.ones((2, 10, 10), np.float32), [3], [4], [1.0])
    assert np.isnan(out[:, 4, 3]).all() and np.isnan(out[0]).sum() == 5


# ------------------------------------------------------------------ negatives
def test_negative_windows_avoid_masked_pixels(tile, truth):
    masked, mask = mask_field(tile, truth, radius_reff=0.25)
    bad = mask | ~np.isfinite(tile.data).all(axis=0)
    rng = np.random.default_rng(5)
    x0, y0, size = sample_windows(masked.data, rng, 200, np.log(4.0), 0.6, min_size_px=8)
    assert len(x0) == 200
    h, w = tile.shape
    assert np.all((x0 >= 0) & (y0 >= 0) & (x0 + size <= w) & (y0 + size <= h))
    for a, b, s in zip(x0, y0, size, strict=True):
        assert not bad[b : b + s, a : a + s].any()
        assert np.isfinite(masked.data[:, b : b + s, a : a + s]).all()
    again = sample_windows(
        masked.data, np.random.default_rng(5), 200, np.log(4.0), 0.6, min_size_px=8
    )
    np.testing.assert_array_equal(again[0], x0)


def test_negatives_allow_some_nan_but_never_a_bubble_disc():
    rng = np.random.default_rng(3)
    data = rng.normal(10, 1, (2, 120, 120))
    data[:, 50:54, 50:54] = np.nan  # a small saturated core: 16 px
    mask = np.zeros((120, 120), bool)
    mask[20:24, 90:94] = True  # a catalogue-bubble disc
    x0, y0, size = sample_windows(
        data, rng, 300, np.log(6), 0.3, min_size_px=16, min_valid_fraction=0.9, mask=mask
    )
    assert len(x0) == 300
    holds_nan = [
        np.isnan(data[:, b : b + s, a : a + s]).any() for a, b, s in zip(x0, y0, size, strict=True)
    ]
    assert any(holds_nan)  # windows over the saturated core are allowed ...
    for a, b, s, bad in zip(x0, y0, size, holds_nan, strict=True):
        assert not mask[b : b + s, a : a + s].any()  # ... bubble discs never
        if bad:
            assert 16 / s**2 <= 0.1 + 1e-12
    strict = sample_windows(data, np.random.default_rng(4), 100, np.log(6), 0.3, min_size_px=16)
    for a, b, s in zip(*strict, strict=True):
        assert np.isfinite(data[:, b : b + s, a : a + s]).all()


def test_flat_windows_are_rejected():
    data = np.ones((2, 60, 60))
    data[:, :, 30:] += np.random.default_rng(0).normal(0, 1, (2, 60, 30))
    x0, _, size = sample_windows(
        data, np.random.default_rng(1), 30, np.log(3), 0.1, min_size_px=8, flat_min_std=0.05
    )
    assert len(x0) == 30 and np.all(x0 + size > 30)  # every window reaches the noisy half


def _negative_settings(per_field):
    """bubbles.negatives settings of the negatives tests."""
    return {
        "per_field": per_field,
        "half_width_factor": [1.7, 5.9],
        "min_size_px": 8,
        "flat_min_std": 0.05,
        "max_tries_factor": 50,
    }


def test_negatives_file_and_groups_round_trip(tmp_path, tile, truth):
    masked, _ = mask_field(tile, truth)
    neg = _negative_settings(40)
    catalog = truth.copy()
    catalog["FIELD"] = "03000+0000"
    out = negatives_for_field(
        masked, catalog, train_fields=["03000+0000"], seed=1, neg=neg, preprocess=PP
    )
    assert out["inputs"].shape == (40, 48, 48, 2) and out["inputs"].dtype == np.float32
    inputs = out["inputs"][:]  # the stream, preprocessed
    assert np.all((inputs >= 0) & (inputs <= 1))
    path = tmp_path / "03000+0000.h5"
    write_negatives(
        path,
        out["inputs"],
        out["x0"],
        out["y0"],
        out["size"],
        out["glon"],
        out["glat"],
        out["attrs"],
    )
    labels = group_windows(window_features(inputs, 8), 3, seed=0)
    table = class_table(
        ["03000+0000"] * 40,
        np.arange(40),
        labels,
        3,
        drop_classes=[2],
        class_weights=[1.0, 0.5, 1.0],
    )
    write_group_table(tmp_path / "groups.ecsv", table)
    got = read_negatives([path], tmp_path / "groups.ecsv")
    assert len(got["x0"]) == (labels != 2).sum()
    assert set(got["cls"]) <= {0, 1}
    np.testing.assert_allclose(got["weight"], np.where(got["cls"] == 1, 0.5, 1.0))
    assert not isinstance(got["inputs"], np.ndarray)  # lazy: rows are read when indexed
    np.testing.assert_array_equal(got["inputs"][:], inputs[labels != 2])
    pick = np.array([5, 1, 1, 3])  # unsorted, repeated: a batch draw
    np.testing.assert_array_equal(got["inputs"][pick], inputs[labels != 2][pick])
    with pytest.raises(ValueError, match="class_weights"):
        class_table(["f"], [0], [0], 3, class_weights=[1.0])


def test_negative_size_fit_uses_training_fields_only(tile, truth):
    """Large clear bubbles of a test and a validation field must not move the window-size fit:
    only the training field's bubbles (here 1' and 1.5', clear) set mu and sigma."""
    masked, _ = mask_field(tile, truth)
    pix = masked.pixel_arcsec
    catalog = Table()
    catalog["FIELD"] = ["03000+0000", "03000+0000", "01500+0000", "02700+0000", "01500+0000"]
    catalog["MajAxis"] = [1.0, 1.5, 8.0, 6.0, 0.2]
    catalog["CLEAR"] = [True, True, True, True, False]
    neg = _negative_settings(10)
    out = negatives_for_field(
        masked, catalog, train_fields=["03000+0000"], seed=1, neg=neg, preprocess=PP
    )
    ln = np.log(np.array([1.0, 1.5]) * 60 / pix)
    assert out["attrs"]["lognormal_mu_px"] == pytest.approx(ln.mean())
    assert out["attrs"]["lognormal_sigma"] == pytest.approx(ln.std())
    assert out["attrs"]["size_fit_bubbles"] == 2
    # fewer than two clear training bubbles: the training field's bubbles, still none of the test's
    one = catalog.copy()
    one["CLEAR"] = [True, False, True, True, True]
    np.testing.assert_allclose(size_fit_bubbles(one, ["03000+0000"]), [1.0, 1.5])
    with pytest.raises(ValueError, match="no catalogue bubble in the training fields"):
        size_fit_bubbles(catalog, ["03900+0000"])


def test_kmeans_separates_distinct_populations():
    rng = np.random.default_rng(0)
    rings = np.zeros((30, 32, 32, 2), np.float32)
    yy, xx = np.mgrid[:32, :32]
    rings[..., 1] = (np.abs(np.hypot(xx - 15.5, yy - 15.5) - 10) < 2)[None]
    blobs = np.zeros((30, 32, 32, 2), np.float32)
    blobs[..., 0] = np.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / 20)[None]
    x = np.concatenate([rings, blobs]) + rng.normal(0, 0.05, (60, 32, 32, 2)).astype(np.float32)
    labels = group_windows(window_features(x, 4), 2, seed=0)
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1
    assert labels[0] != labels[30]


# ------------------------------------------------------------------ windows and boxes
def test_sliding_windows_cover_and_stay_inside():
    np.testing.assert_array_equal(positions(100, 30, 10), [0, 10, 20, 30, 40, 50, 60, 70])
    np.testing.assert_array_equal(positions(105, 30, 10)[-2:], [70, 75])  # last one shifted in
    x0, y0, size = sliding_windows((70, 130), [30, 60], 1 / 3)
    assert np.all((x0 + size <= 130) & (y0 + size <= 70) & (x0 >= 0) & (y0 >= 0))
    covered = np.zeros((70, 130), bool)
    for a, b, s in zip(x0[size == 30], y0[size == 30], size[size == 30], strict=True):
        covered[b : b + s, a : a + s] = True
    assert covered.all()


def test_edge_windows_reach_past_the_field_by_edge_pad_only():
    np.testing.assert_array_equal(positions(100, 30, 10, pad=10), [-10, 0, 10, 20, 30, 40, 50, 60, 70, 80])
    np.testing.assert_array_equal(positions(100, 30, 10, pad=0), positions(100, 30, 10))
    shape = (70, 130)
    x0, y0, size = sliding_windows(shape, [30, 60], 1 / 3, edge_pad=1 / 3)
    for s, reach in ((30, 10), (60, 20)):  # a third of the side, not more, on every edge
        sel = size == s
        assert x0[sel].min() == -reach and y0[sel].min() == -reach
        assert (x0[sel] + s).max() == 130 + reach and (y0[sel] + s).max() == 70 + reach
    # the edge windows are added to the inside grid: a bubble on the field's edge sits a
    # third of a window from the nearest window edge instead of on it
    inner = sliding_windows(shape, [30, 60], 1 / 3)
    assert len(x0) > len(inner[0])
    left = (size == 30) & (x0 == -10)
    assert left.any() and np.all(x0[left] + 10 == 0)


def test_padded_field_prepares_the_inside_alike_and_fills_outside_as_no_coverage(tile):
    from skydetect.bubbles.preprocess import FieldPreprocessor
    from skydetect.bubbles.window_stream import WindowStream

    h, w = tile.shape
    plain = FieldPreprocessor(tile.data, **PP)
    padded = FieldPreprocessor(tile.data, pad=30, **PP)
    assert padded.shape == (h, w) and padded.filled.shape[1:] == (h, w)  # arrays not framed
    # windows inside are those of the plain field, also in one call with edge windows
    inside = ([0, 50, 60], [0, 40, 50], [40, 40, 40])
    np.testing.assert_array_equal(padded.windows(*inside), plain.windows(*inside))
    mixed = padded.windows([-20, 50], [40, 40], [40, 40])
    np.testing.assert_array_equal(mixed[1], plain.window(50, 40, 40))
    # a window half outside: a cut-out of its data, NaN outside the field
    edge = padded.window(-20, 40, 40)
    np.testing.assert_array_equal(mixed[0], edge)
    framed = np.pad(tile.data, ((0, 0), (30, 30), (30, 30)), constant_values=np.nan)
    np.testing.assert_allclose(edge, preprocess_window(framed, 10, 70, 40, **PP), atol=1e-6)
    # finite, in [0, 1], its outside half the local background
    # (smooth: no structure brighter than the field part's own range)
    assert np.isfinite(edge).all() and edge.min() >= 0 and edge.max() <= 1
    outside = edge[:, : edge.shape[1] // 2 - 4]
    assert outside.std() < edge[:, edge.shape[1] // 2 + 4 :].std()
    with pytest.raises(ValueError, match="leaves the"):
        plain.window(-20, 40, 40)
    with pytest.raises(ValueError, match="30 px around the"):
        padded.window(-31, 40, 40)
    # a stream over edge windows prepares the field with the padding they need
    stream = WindowStream(tile.data, [-20, 50], [40, 40], [40, 40], **PP)
    np.testing.assert_array_equal(stream[:], mixed)


def test_window_boxes_never_leave_window_or_image(tmp_path, tile, truth):
    fields = {"03000+0000": field_truth(tile, truth)}
    # add a bubble straddling the corner of the tile
    t = fields["03000+0000"]
    t["boxes"] = np.vstack([t["boxes"], [[-5.0, -5.0, 7.0, 7.0]]])
    for k, v in (
        ("clear", True),
        ("mwp", "EDGE"),
        ("glon", 0.0),
        ("glat", 0.0),
        ("maj_arcmin", 1.0),
    ):
        t[k] = np.append(t[k], v)
    arrays = make_windows(fields, [8, 16], 1 / 3)
    write_windows(tmp_path / "w.h5", arrays, {"split": "validation"})
    w = read_windows(tmp_path / "w.h5")
    h, wd = tile.shape
    assert np.all((w["x0"] >= 0) & (w["y0"] >= 0))
    assert np.all((w["x0"] + w["size"] <= wd) & (w["y0"] + w["size"] <= h))
    assert set(np.unique(w["size"])) == {40, 80}  # 8' and 16' at 12"
    b, j = w["boxes"], w["box_window"]
    assert len(b) > 0
    assert np.all(b[:, 0] >= w["x0"][j]) and np.all(b[:, 2] <= w["x0"][j] + w["size"][j])
    assert np.all(b[:, 1] >= w["y0"][j]) and np.all(b[:, 3] <= w["y0"][j] + w["size"][j])
    assert np.all((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= wd) & (b[:, 3] <= h))
    assert "EDGE" in set(w["box_mwp"])
    assert w["truth"]["03000+0000"]["boxes"].shape == (len(t["mwp"]), 4)
    assert w["attrs"]["split"] == "validation"


def test_box_coordinate_round_trip():
    boxes = np.array([[10.0, 20.0, 30.0, 50.0]])
    inp = field_to_input(boxes, 5, 10, 100, 300)
    np.testing.assert_allclose(inp, [[15, 30, 75, 120]])
    np.testing.assert_allclose(input_to_field(inp, 5, 10, 100, 300), boxes)


def test_box_augmentation_matches_image_augmentation():
    img = np.zeros((20, 20, 2))
    box = np.array([[3.0, 5.0, 9.0, 8.0]])  # columns 3..8, rows 5..7
    img[5:8, 3:9] = 1
    for k in range(4):
        for flip in (False, True):
            out, b = augment(img, box, k, flip)
            ys, xs = np.nonzero(out[..., 0])
            np.testing.assert_allclose(b[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    np.testing.assert_allclose(rotate_boxes(box, 20, 4), box)
    np.testing.assert_allclose(flip_boxes(flip_boxes(box, 20), 20), box)


def test_crop_keeps_bubble_inside_and_in_scale():
    rng = np.random.default_rng(0)
    box = np.array([40.0, 50.0, 60.0, 70.0])  # MajAxis = 10 / 1.3 px
    maj = 10 / 1.3
    for _ in range(200):
        x0, y0, size = crop_geometry(rng, box, maj, (120, 200), (1.7, 5.9))
        assert 0 <= x0 and 0 <= y0 and x0 + size <= 200 and y0 + size <= 120
        assert x0 <= box[0] and y0 <= box[1] and x0 + size >= box[2] and y0 + size >= box[3]
        assert 2 * 1.7 * maj - 1 <= size <= min(2 * 5.9 * maj + 1, 120)


# ------------------------------------------------------------------ preprocessing
def test_same_window_same_array_on_every_path(tmp_path, field_files, tile, truth):
    crops = BubbleCrops([tile], truth, seed=0, augment=False, **PP)
    assert len(crops) == truth["CLEAR"].sum() > 0
    x_crop, boxes, (x0, y0, size) = crops.crop(np.random.default_rng(2), crops.items[0])
    # inference path: the field read again from its FITS file, the window by geometry
    again = sio.read_field(field_files[0] / "aligned.fits")
    np.testing.assert_array_equal(preprocess_window(again.data, x0, y0, size, **PP), x_crop)
    # validation-window path: the window file's geometry, through the field preprocessor
    # (row summed-area tables, one smoothing per scale): another implementation of the steps
    arrays = make_windows({"03000+0000": field_truth(tile, truth)}, [8], 1 / 3)
    arrays["x0"][0], arrays["y0"][0], arrays["size"][0] = x0, y0, size
    write_windows(tmp_path / "w.h5", arrays, {})
    w = read_windows(tmp_path / "w.h5")
    batch = preprocess_windows(again.data, w["x0"][:40], w["y0"][:40], w["size"][:40], **PP)
    single = np.stack(
        [
            preprocess_window(again.data, a, b, c, **PP)
            for a, b, c in zip(w["x0"][:40], w["y0"][:40], w["size"][:40], strict=True)
        ]
    )
    # the two differ only by the point-source threshold's statistics (field vs window)
    assert np.abs(batch - single).mean() < 0.01
    assert np.abs(batch[0] - x_crop).max() < 0.1
    assert np.all((boxes >= 0) & (boxes <= PP["input_size"]))
    # augmenting after preprocessing == preprocessing the rotated / flipped sky
    window = tile.data[:, y0 : y0 + size, x0 : x0 + size]
    direct = preprocess_window(window, 0, 0, size, **PP)
    assert np.abs(direct - x_crop).mean() < 0.02  # the margin matters only at the edges
    for k in (1, 2, 3):
        rotated = np.rot90(window, k, axes=(1, 2)).copy()
        np.testing.assert_allclose(
            preprocess_window(rotated, 0, 0, size, **PP),
            np.rot90(direct, k, axes=(0, 1)),
            atol=1e-5,
        )
    flipped = window[:, :, ::-1].copy()
    np.testing.assert_allclose(
        preprocess_window(flipped, 0, 0, size, **PP), direct[:, ::-1], atol=1e-5
    )


def test_window_stream_equals_the_stack_and_bounds_memory(tile):
    from skydetect.bubbles.window_stream import WindowStream

    x0, y0, size = sliding_windows(tile.shape, [40, 80], 1 / 3)
    full = preprocess_windows(tile.data, x0, y0, size, **PP)
    stream = WindowStream(tile.data, x0, y0, size, **PP)  # no cache
    assert len(stream) == len(full) and stream.shape == full.shape
    # a chunk sums the window statistics in another order than one call over all windows
    # (float32 rounding, which depends on the CPU's vector width): equal to 1e-6
    same = dict(rtol=0, atol=1e-6)
    np.testing.assert_allclose(stream[7:30], full[7:30], **same)
    np.testing.assert_allclose(stream[np.array([3, 100, 4])], full[[3, 100, 4]], **same)
    np.testing.assert_array_equal(stream[np.array([3, 100, 4])][1], stream[100:101][0])
    assert stream._cache is None  # nothing kept between chunks
    cached = WindowStream(tile.data, x0, y0, size, cache_mb=100, **PP)
    np.testing.assert_allclose(cached[:5], full[:5], **same)
    np.testing.assert_array_equal(cached[:5], cached[np.arange(5)])
    assert cached._cache is not None


def test_window_stream_disk_cache_serves_the_stack_and_cleans_up(tile, tmp_path):
    """Windows too large for memory go to a temporary .npy once (in chunks); every later read
    equals the preprocessed stack, nothing is kept in memory, the file goes with the stream."""
    from skydetect.bubbles.window_stream import WindowStream

    x0, y0, size = sliding_windows(tile.shape, [40, 80], 1 / 3)
    full = preprocess_windows(tile.data, x0, y0, size, **PP)
    disk = WindowStream(
        tile.data, x0, y0, size, cache_mb=0.01, disk_cache_mb=100, cache_dir=tmp_path,
        chunk=7, **PP,
    )
    np.testing.assert_allclose(disk[2:9], full[2:9], rtol=0, atol=1e-6)
    (path,) = tmp_path.glob("windows_*.npy")
    assert np.load(path).shape == full.shape
    disk._fp = "must not be used again"  # later passes read the file, never preprocess
    first = disk[:]
    # chunks of 7 sum the window statistics in another order than one call: float32 rounding
    np.testing.assert_allclose(first, full, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(disk[:], first)
    np.testing.assert_array_equal(disk[np.array([5, 0, 5])], first[[5, 0, 5]])
    assert disk._cache is None
    del disk
    import gc

    gc.collect()
    assert not list(tmp_path.glob("windows_*.npy"))
    small = WindowStream(
        tile.data, x0, y0, size, disk_cache_mb=0.01, cache_dir=tmp_path, **PP
    )  # too large for the disk cache as well: preprocessed on every pass
    np.testing.assert_allclose(small[3:4], full[3:4], rtol=0, atol=1e-6)
    assert not list(tmp_path.glob("windows_*.npy"))


def test_crops_epochs_are_seeded_and_boxes_inside():
    tile = _toy_tile()
    table = _one_bubble(30.0, 0.0, maj=1.0)
    crops = BubbleCrops([tile], table, seed=4, **PP)
    a = list(crops.epoch(0))
    b = list(crops.epoch(0))
    c = list(crops.epoch(1))
    np.testing.assert_array_equal(a[0][0], b[0][0])
    assert not np.array_equal(a[0][0], c[0][0])
    for x, boxes in a + c:
        assert x.shape == (48, 48, 2) and len(boxes) == 1
        assert np.all((boxes >= 0) & (boxes <= 48))


def _toy_tile():
    w, shape = sio.field_wcs(30, 0, 0.5, 0.3, 12.0)
    data = np.random.default_rng(0).normal(10, 1, (2, *shape)).astype(np.float32)
    return sio.SpitzerField(data, w, 12.0, "03000+0000")


def test_preprocess_normalisation_and_nan_handling():
    rng = np.random.default_rng(1)
    img = rng.normal(100, 5, (2, 64, 64))
    img[0] += 50  # channel 0 brighter: normalisation is per channel
    img[:, 20:44, 20:44] += 60  # a bright region ...
    truth = img.copy()
    img[:, :, :8] = np.nan  # no coverage at the edge
    img[:, 30:33, 30:33] = np.nan  # ... with a saturated core
    x = preprocess_window(img, 0, 0, 64, input_size=64, antialias=False)
    ref = preprocess_window(truth, 0, 0, 64, input_size=64, antialias=False)
    assert x.shape == (64, 64, 2) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    # NaN -> local background: the core takes the bright region's level, the edge the
    # level of its neighbours (no bright disc, no black band)
    ring = x[26:37, 26:37].copy()
    ring[4:7, 4:7] = np.nan
    around = np.nanmean(ring, axis=(0, 1))
    assert np.abs(x[30:33, 30:33] - around).max() < 0.1
    assert around.min() > 0.6  # the bright region, not a hole or a bright disc
    assert np.abs(x[:, :7].mean(axis=(0, 1)) - ref[:, 8:16].mean(axis=(0, 1))).max() < 0.15
    assert abs(x[50:, 50:, 0].mean() - x[50:, 50:, 1].mean()) < 0.05
    flat = preprocess_window(np.ones((2, 16, 16)), 0, 0, 16, input_size=8)
    np.testing.assert_array_equal(flat, 0)
    absent = img.copy()
    absent[0] = np.nan  # 8 µm-only: no 24 µm data -> a zero channel
    y = preprocess_window(absent, 0, 0, 64, input_size=64, antialias=False)
    np.testing.assert_array_equal(y[..., 0], 0)
    np.testing.assert_allclose(y[..., 1], x[..., 1], atol=1e-6)
    with pytest.raises(ValueError, match="leaves the 64 x 64 image"):
        preprocess_window(img, 40, 0, 32, input_size=16)


def test_fill_nan_is_the_local_background():
    from skydetect.bubbles.preprocess import fill_nan

    yy, xx = np.mgrid[:200, :300]
    sky = (10 + 0.05 * xx + 0.02 * yy).astype(np.float32)  # a smooth gradient
    holed = sky.copy()
    holed[90:96, 140:146] = np.nan  # small: Gaussian-weighted neighbours
    holed[:, :40] = np.nan  # wide: block means
    out = fill_nan(holed, 4.0)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[np.isfinite(holed)], holed[np.isfinite(holed)])
    assert np.abs(out[90:96, 140:146] - sky[90:96, 140:146]).max() < 0.2
    assert np.abs(out[:, :40] - sky[:, :40]).mean() < 2.0


def test_point_sources_do_not_set_the_clip_level():
    rng = np.random.default_rng(2)
    img = rng.normal(100, 5, (2, 80, 80))
    stars = img.copy()
    idx = rng.integers(2, 78, (40, 2))
    stars[:, idx[:, 0], idx[:, 1]] += 5000
    kw = dict(input_size=80, antialias=False)
    a = preprocess_window(img, 0, 0, 80, **kw)
    b = preprocess_window(stars, 0, 0, 80, **kw)
    quiet = np.ones((80, 80), bool)
    quiet[idx[:, 0], idx[:, 1]] = False
    # with the stars masked from the statistics, the background keeps its scaling
    assert np.abs(a[quiet] - b[quiet]).mean() < 0.05
    nomask = preprocess_window(stars, 0, 0, 80, point_source_nsigma=1e9, **kw)
    assert np.abs(a[quiet] - nomask[quiet]).mean() > 0.2


def test_downsampling_is_antialiased():
    yy, xx = np.mgrid[:120, :120]
    stripes = 10 * np.sin(2 * np.pi * xx / 3.3)  # far above the output Nyquist frequency
    img = np.stack([stripes + yy * 0.2, stripes + yy * 0.2])
    kw = dict(input_size=30, point_source_nsigma=1e9)
    smooth = preprocess_window(img, 0, 0, 120, **kw)
    raw = preprocess_window(img, 0, 0, 120, antialias=False, **kw)
    # the stripes alias into a spurious pattern along x unless smoothed first
    assert smooth[..., 1].std(axis=1).mean() < 0.2 * raw[..., 1].std(axis=1).mean()


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


# ------------------------------------------------------------------ any mosaic pair
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
    x, y = cat.bubble_pixels(_one_bubble(g.l.deg, g.b.deg), again.wcs)
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


# ------------------------------------------------------------------ whole-plane survey
def _detections(field, glon, glat, size_arcmin, score):
    t = Table()
    n = len(glon)
    t["ID"] = [f"{field}_{i:04d}" for i in range(n)]
    t["FIELD"] = [field] * n
    t["GLON"], t["GLAT"] = np.asarray(glon, float), np.asarray(glat, float)
    t["WIDTH_ARCMIN"] = np.asarray(size_arcmin, float)
    t["HEIGHT_ARCMIN"] = np.asarray(size_arcmin, float)
    t["SIZE_ARCMIN"] = np.asarray(size_arcmin, float)
    t["SCORE"] = np.asarray(score, float)
    return t


def test_cross_field_nms_keeps_one_of_a_bubble_seen_twice():
    from skydetect.bubbles.survey import merge_fields

    # fields at l = 15 and l = 18 overlap around l = 16.5; a 2' bubble at l = 16.52 is seen by
    # both (centres 0.2' apart), a second one only by the first, a third 3' from the first
    a = _detections("01500+0000", [16.52, 15.0, 16.52 + 3 / 60], [0.1, 0.2, 0.1], [2, 1, 2],
                    [0.9, 0.8, 0.7])
    b = _detections("01800+0000", [16.52 + 0.2 / 60], [0.1 + 0.1 / 60], [2.1], [0.95])
    merged = merge_fields([a, b], merge_iou=0.3)
    assert len(merged) == 3
    near = np.abs(merged["GLON"] - 16.52) < 1 / 60
    assert near.sum() == 1 and merged["FIELD"][near][0] == "01800+0000"  # the better score
    # across l = 0: 359.99 and 0.01 are 1.2' apart, the same bubble of 3'
    c = _detections("00000+0000", [0.01], [0.0], [3], [0.6])
    d = _detections("35700+0000", [359.99], [0.0], [3], [0.5])
    assert len(merge_fields([c, d])) == 1
    assert len(merge_fields([a])) == 3  # nothing removed within one field's distinct bubbles


def test_survey_fields_and_catalogue():
    from skydetect.bubbles.survey import survey_catalog, survey_counts, survey_longitudes

    lons = survey_longitudes(None)
    assert len(lons) == 45 and 0.0 in lons and 66.0 in lons and 294.0 in lons
    assert 69.0 not in lons and survey_longitudes([15, 18]) == [15.0, 18.0]
    merged = _detections("01500+0000", [15.0, 15.5], [0.0, 0.3], [2.6, 1.3], [0.9, 0.6])
    mwp = _one_bubble(15.0 + 0.5 / 60, 0.0, maj=1.0)
    t = survey_catalog(merged, mwp, box_scale=1.3)
    assert list(t["STATUS"]) == ["KNOWN", "NEW"] and t["MWP"][0] == "TEST1"
    assert t["separation"][0] == pytest.approx(0.5, abs=1e-3)
    assert t["MajAxis"][0] == pytest.approx(1.0) and str(t["MajAxis"].unit) == "arcmin"
    counts = survey_counts(t, mwp, ["01500+0000"], {"01500+0000": (13.5, 16.5)})
    assert list(counts[-1]["detected", "known", "new", "mwp_in_fields"]) == [2, 1, 1, 1]


# ------------------------------------------------------------------ bounded memory
def test_streaming_validation_gives_the_in_memory_f2(tmp_path, field_files, tile, truth):
    import tensorflow as tf

    from skydetect.bubbles.detect import DetectSettings
    from skydetect.bubbles.ssd.model import build_ssd
    from skydetect.bubbles.train import ValidationField, load_validation, validate

    arrays = make_windows({"03000+0000": field_truth(tile, truth)}, [6, 12], 1 / 3)
    write_windows(tmp_path / "v.h5", arrays, {})
    path = field_files[0] / "aligned.fits"
    streamed = load_validation(tmp_path / "v.h5", {"03000+0000": path}, PP)
    assert not isinstance(streamed[0].inputs, np.ndarray)  # windows are made on demand
    f = streamed[0]
    in_memory = ValidationField(
        f.name,
        preprocess_windows(tile.data, f.x0, f.y0, f.size, **PP),
        f.x0,
        f.y0,
        f.size,
        f.truth,
        f.clear,
    )
    tf.keras.utils.set_random_seed(0)
    model, priors = build_ssd({"backbone": "light", "input_size": PP["input_size"]})
    # small batches: the stream is cut into several chunks by the network loop
    settings = DetectSettings(min_score=0.05, batch_size=4)
    thresholds = [0.05, 0.3, 0.5, 0.7]
    thr_a, counts_a = validate(model, priors, [in_memory], settings, thresholds)
    thr_b, counts_b = validate(model, priors, streamed, settings, thresholds)
    assert counts_a.n_pred > 0  # random weights still box something at a low threshold
    assert (thr_a, counts_a) == (thr_b, counts_b)
    assert counts_a.f2 == counts_b.f2
