"""Bubble data side (issue 7): mock mosaics, catalogue, masks, negatives, windows, preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skydetect.bubbles import catalog as cat
from skydetect.bubbles.crops import BubbleCrops, augment, crop_geometry, flip_boxes, rotate_boxes
from skydetect.bubbles.masks import disc_mask, mask_discs, mask_tile
from skydetect.bubbles.negatives import (
    class_table,
    cluster_windows,
    negatives_for_tile,
    read_negatives,
    sample_windows,
    window_features,
    write_class_table,
    write_negatives,
)
from skydetect.bubbles.preprocess import preprocess_window, preprocess_windows
from skydetect.bubbles.windows import (
    field_truth,
    input_to_tile,
    make_windows,
    positions,
    read_windows,
    sliding_windows,
    tile_to_input,
    write_windows,
)
from skydetect.sky import spitzer

CATALOGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs"
PP = dict(input_size=48, clip_sigma=3.0, point_source_nsigma=5.0, point_source_filter_px=5)

SIM = dict(
    pixel_arcsec=12.0,
    m24_pixel_factor=1.5,
    width_deg=1.0,
    height_deg=0.6,
    bubbles_per_tile=90,
    clear_fraction=0.6,
    size_median_arcmin=0.81,
    size_sigma_ln=0.82,
    min_majaxis_arcmin=0.6,
    max_majaxis_arcmin=4.0,
    point_sources_per_deg2=3000,
    compact_24um_per_deg2=20,
    filaments_per_tile=8,
    dark_clouds_per_tile=6,
    saturated_per_tile=30,  # ~3 on the 1° x 0.6° test field
    background_8um=80.0,
    background_24um=50.0,
    background_scale_deg=0.5,
    noise_8um=0.5,
    noise_24um=0.3,
    beam_8um_arcsec=2.0,
    beam_24um_arcsec=6.0,
    positions_from=None,
    clear_names_from=None,
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
    spitzer.write_mosaic(d / spitzer.glimpse_filename("03000+0000"), i4)
    spitzer.write_mosaic(d / spitzer.mipsgal_filename("03000+0000"), m1)
    tile = spitzer.align_tile(
        d / spitzer.glimpse_filename("03000+0000"),
        d / spitzer.mipsgal_filename("03000+0000"),
        "03000+0000",
    )
    spitzer.write_tile(d / "aligned.fits", tile)
    cat.write_catalog(d / "truth.ecsv", truth)
    return d, truth


@pytest.fixture(scope="module")
def tile(field_files):
    return spitzer.read_tile(field_files[0] / "aligned.fits")


@pytest.fixture(scope="module")
def truth(field_files):
    return cat.read_catalog(field_files[0] / "truth.ecsv")


# ------------------------------------------------------------------ names, headers, catalogue
def test_field_names_round_trip():
    assert spitzer.field_name(15) == "01500+0000"
    assert spitzer.field_name(-1.5) == "35850+0000"
    assert spitzer.field_center("35850+0000") == (-1.5, 0.0)
    assert spitzer.glimpse_filename("01500+0000") == "GLM_01500+0000_mosaic_I4.fits"
    assert spitzer.mipsgal_filename("01500+0000") == "MPG_01500+0000_mosaic_M1.fits"
    with pytest.raises(spitzer.SpitzerError, match="GLIMPSE tile code"):
        spitzer.field_center("l015")


def test_pixel_scale_from_cdelt_cd_pixscal():
    w, _ = spitzer.tile_wcs(15, 0, 1, 1, 1.2)
    assert spitzer.pixel_scale_arcsec(w.to_header()) == pytest.approx(1.2)
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
    assert spitzer.pixel_scale_arcsec(h) == pytest.approx(2.0)
    assert spitzer.pixel_scale_arcsec(fits.Header({"PIXSCAL1": -0.6})) == pytest.approx(0.6)
    with pytest.raises(spitzer.SpitzerError, match="mosaic.fits.*pixel scale unknown"):
        spitzer.pixel_scale_arcsec(fits.Header({"CTYPE1": "GLON-CAR"}), "mosaic.fits")


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


@pytest.mark.catalogs
def test_read_real_mwp_dr2():
    csv = CATALOGS / "mwp_dr2_galactic_plane.csv"
    npy = CATALOGS / "mwp_dr2_clear_bubbles.npy"
    if not (csv.exists() and npy.exists()):
        pytest.skip(f"real catalogues not found in {CATALOGS}")
    t = cat.read_mwp(csv, npy)
    assert len(t) == 2411
    assert t.colnames[:8] == cat.COLUMNS
    assert str(t["MWP"][0]) == "2G0020120-0068213"
    glon = np.asarray(t["GLON"])
    assert glon.max() <= 180 and (glon < 0).sum() > 500  # the fourth quadrant is negative l
    assert 1 <= np.abs(glon).min() and np.abs(glon).max() <= 65.5
    # the clear list has 634 names; 10 of them are Cygnus-X bubbles, not in this file
    assert t["CLEAR"].sum() == 624
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
        assert spitzer.pixel_scale_arcsec(h[0].header) == pytest.approx(18.0)
    assert set(truth["KIND"]) <= {"ring", "arc", "ring_no24", "only24"}
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
        filaments_per_tile=0,
        dark_clouds_per_tile=0,
        saturated_per_tile=0,
        point_sources_per_deg2=0,
        compact_24um_per_deg2=0,
        pixel_arcsec=8.0,
    )
    glon, glat = 30.3, 0.15
    real = _one_bubble(glon, glat, maj=2.0)
    i4, m1, truth = spitzer.simulate_field("03000+0000", cfg, seed=1, real=real)
    assert len(truth) == 1
    # independent expectation for CAR centred on (30, 0) with 8" pixels, CDELT1 < 0
    ny, nx = i4.data.shape
    x_exp = (nx - 1) / 2 - 0.3 * 3600 / 8
    y_exp = (ny - 1) / 2 + 0.15 * 3600 / 8
    spitzer.write_mosaic(tmp_path / "i4.fits", i4)
    spitzer.write_mosaic(tmp_path / "m1.fits", m1)
    tile = spitzer.align_tile(tmp_path / "i4.fits", tmp_path / "m1.fits", "03000+0000")
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
    w8, shape8 = spitzer.tile_wcs(15, 0, 0.5, 0.4, 10.0)
    w24, shape24 = spitzer.tile_wcs(15, 0, 0.6, 0.5, 17.0, projection="TAN")
    yy, xx = np.mgrid[: shape24[0], : shape24[1]]
    lon, lat = w24.pixel_to_world_values(xx, yy)
    m24 = (10 + 5 * spitzer.wrap_glon(lon) + 20 * lat).astype(np.float32)  # linear in l, b
    for name, data, w in (("i4.fits", np.ones(shape8, np.float32), w8), ("m1.fits", m24, w24)):
        h = w.to_header()
        h["BUNIT"] = "MJy/sr"
        fits.PrimaryHDU(data, header=h).writeto(tmp_path / name)
    tile = spitzer.align_tile(tmp_path / "i4.fits", tmp_path / "m1.fits", "01500+0000")
    yy, xx = np.mgrid[: shape8[0], : shape8[1]]
    lon, lat = w8.pixel_to_world_values(xx, yy)
    expected = 10 + 5 * spitzer.wrap_glon(lon) + 20 * lat
    np.testing.assert_allclose(tile.data[0], expected, atol=2e-3)
    np.testing.assert_array_equal(tile.data[1], 1.0)


def test_align_rejects_wrong_unit(tmp_path):
    w8, shape8 = spitzer.tile_wcs(15, 0, 0.2, 0.2, 10.0)
    h = w8.to_header()
    h["BUNIT"] = "Jy/beam"
    fits.PrimaryHDU(np.ones(shape8, np.float32), header=h).writeto(tmp_path / "i4.fits")
    with pytest.raises(spitzer.SpitzerError, match="i4.fits.*BUNIT"):
        spitzer.align_tile(tmp_path / "i4.fits", tmp_path / "i4.fits", "01500+0000")


# ------------------------------------------------------------------ masks
def test_masked_discs_are_nan_and_nothing_else_changes(tile, truth):
    original = tile.data.copy()
    masked, mask = mask_tile(tile, truth, radius_reff=0.25, clear_only=True)
    np.testing.assert_array_equal(tile.data, original)  # input untouched
    assert np.all(np.isnan(masked.data[:, mask]))
    np.testing.assert_array_equal(masked.data[:, ~mask], original[:, ~mask])
    # every clear bubble's centre pixel is masked, no unclear-only region is
    x, y = cat.bubble_pixels(truth, tile.wcs)
    for xi, yi, clear in zip(x, y, truth["CLEAR"], strict=True):
        xc, yc = int(np.floor(xi + 0.5)), int(np.floor(yi + 0.5))
        if 0 <= xc < tile.shape[1] and 0 <= yc < tile.shape[0]:
            assert mask[yc, xc] or not clear


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
    masked, mask = mask_tile(tile, truth, radius_reff=0.25)
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


def test_flat_windows_are_rejected():
    data = np.ones((2, 60, 60))
    data[:, :, 30:] += np.random.default_rng(0).normal(0, 1, (2, 60, 30))
    x0, _, size = sample_windows(
        data, np.random.default_rng(1), 30, np.log(3), 0.1, min_size_px=8, flat_min_std=0.05
    )
    assert len(x0) == 30 and np.all(x0 + size > 30)  # every window reaches the noisy half


def test_negatives_file_and_clusters_round_trip(tmp_path, tile, truth):
    masked, _ = mask_tile(tile, truth)
    neg = {
        "per_tile": 40,
        "half_width_factor": [1.7, 5.9],
        "min_size_px": 8,
        "flat_min_std": 0.05,
        "max_tries_factor": 50,
    }
    out = negatives_for_tile(masked, truth, seed=1, neg=neg, preprocess=PP)
    assert out["inputs"].shape == (40, 48, 48, 2) and out["inputs"].dtype == np.float32
    assert np.all((out["inputs"] >= 0) & (out["inputs"] <= 1))
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
    labels = cluster_windows(window_features(out["inputs"], 8), 3, seed=0)
    table = class_table(
        ["03000+0000"] * 40,
        np.arange(40),
        labels,
        3,
        drop_classes=[2],
        class_weights=[1.0, 0.5, 1.0],
    )
    write_class_table(tmp_path / "clusters.ecsv", table)
    got = read_negatives([path], tmp_path / "clusters.ecsv")
    assert len(got["x0"]) == (labels != 2).sum()
    assert set(got["cls"]) <= {0, 1}
    np.testing.assert_allclose(got["weight"], np.where(got["cls"] == 1, 0.5, 1.0))
    np.testing.assert_array_equal(got["inputs"], out["inputs"][labels != 2])
    with pytest.raises(ValueError, match="class_weights"):
        class_table(["f"], [0], [0], 3, class_weights=[1.0])


def test_kmeans_separates_distinct_populations():
    rng = np.random.default_rng(0)
    rings = np.zeros((30, 32, 32, 2), np.float32)
    yy, xx = np.mgrid[:32, :32]
    rings[..., 1] = (np.abs(np.hypot(xx - 15.5, yy - 15.5) - 10) < 2)[None]
    blobs = np.zeros((30, 32, 32, 2), np.float32)
    blobs[..., 0] = np.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / 20)[None]
    x = np.concatenate([rings, blobs]) + rng.normal(0, 0.05, (60, 32, 32, 2)).astype(np.float32)
    labels = cluster_windows(window_features(x, 4), 2, seed=0)
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
    inp = tile_to_input(boxes, 5, 10, 100, 300)
    np.testing.assert_allclose(inp, [[15, 30, 75, 120]])
    np.testing.assert_allclose(input_to_tile(inp, 5, 10, 100, 300), boxes)


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
    # inference path: the tile read again from its FITS file, the window by geometry
    again = spitzer.read_tile(field_files[0] / "aligned.fits")
    np.testing.assert_array_equal(preprocess_window(again.data, x0, y0, size, **PP), x_crop)
    # validation-window path: the window file's geometry, preprocessed in a batch
    arrays = make_windows({"03000+0000": field_truth(tile, truth)}, [8], 1 / 3)
    arrays["x0"][0], arrays["y0"][0], arrays["size"][0] = x0, y0, size
    write_windows(tmp_path / "w.h5", arrays, {})
    w = read_windows(tmp_path / "w.h5")
    batch = preprocess_windows(again.data, w["x0"][:2], w["y0"][:2], w["size"][:2], **PP)
    np.testing.assert_array_equal(batch[0], x_crop)
    assert np.all((boxes >= 0) & (boxes <= PP["input_size"]))
    # augmenting after preprocessing == preprocessing the rotated / flipped sky
    window = tile.data[:, y0 : y0 + size, x0 : x0 + size]
    for k in (1, 2, 3):
        rotated = np.rot90(window, k, axes=(1, 2)).copy()
        direct = preprocess_window(rotated, 0, 0, size, **PP)
        np.testing.assert_allclose(direct, np.rot90(x_crop, k, axes=(0, 1)), atol=1e-5)
    flipped = window[:, :, ::-1].copy()
    np.testing.assert_allclose(
        preprocess_window(flipped, 0, 0, size, **PP), x_crop[:, ::-1], atol=1e-5
    )


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
    w, shape = spitzer.tile_wcs(30, 0, 0.5, 0.3, 12.0)
    data = np.random.default_rng(0).normal(10, 1, (2, *shape)).astype(np.float32)
    return spitzer.SpitzerTile(data, w, 12.0, "03000+0000")


def test_preprocess_normalisation_and_nan_handling():
    rng = np.random.default_rng(1)
    img = rng.normal(100, 5, (2, 64, 64))
    img[0] += 50  # channel 0 brighter: normalisation is per channel
    img[:, :, :8] = np.nan  # no coverage at the edge
    img[:, 30:33, 30:33] = np.nan  # saturated core
    x = preprocess_window(img, 0, 0, 64, input_size=64, antialias=False)
    assert x.shape == (64, 64, 2) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(x[:, :7], 0.0)  # edge NaN -> minimum
    np.testing.assert_allclose(x[31, 31], 1.0)  # enclosed NaN -> clip level
    assert abs(x[40:, 20:, 0].mean() - x[40:, 20:, 1].mean()) < 0.05
    flat = preprocess_window(np.ones((2, 16, 16)), 0, 0, 16, input_size=8)
    np.testing.assert_array_equal(flat, 0)
    with pytest.raises(ValueError, match="leaves the 64 x 64 image"):
        preprocess_window(img, 40, 0, 32, input_size=16)


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
