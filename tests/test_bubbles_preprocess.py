"""Window preprocessing (skydetect.bubbles.preprocess): one array for a window on every
path, normalisation, NaN filling, point sources, antialiasing, padded fields."""

from __future__ import annotations

import numpy as np
import pytest
from bubble_fixtures import PP

from skydetect.bubbles.crops import BubbleCrops
from skydetect.bubbles.preprocess import preprocess_window, preprocess_windows
from skydetect.bubbles.windows import field_truth, make_windows, read_windows, write_windows
from skydetect.io import spitzer as sio


def test_same_window_same_array_on_every_path(tmp_path, field_files, spitzer_field, truth):
    crops = BubbleCrops([spitzer_field], truth, seed=0, augment=False, **PP)
    assert len(crops) == truth["CLEAR"].sum() > 0
    x_crop, boxes, (x0, y0, size) = crops.crop(np.random.default_rng(2), crops.items[0])
    # inference path: the field read again from its FITS file, the window by geometry
    again = sio.read_field(field_files[0] / "aligned.fits")
    np.testing.assert_array_equal(preprocess_window(again.data, x0, y0, size, **PP), x_crop)
    # validation-window path: the window file's geometry, through the field preprocessor
    # (row summed-area tables, one smoothing per scale): another implementation of the steps
    arrays = make_windows({"03000+0000": field_truth(spitzer_field, truth)}, [8], 1 / 3)
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
    window = spitzer_field.data[:, y0 : y0 + size, x0 : x0 + size]
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


def test_padded_field_prepares_the_inside_alike_and_fills_outside_as_no_coverage(spitzer_field):
    from skydetect.bubbles.preprocess import FieldPreprocessor
    from skydetect.bubbles.window_stream import WindowStream

    h, w = spitzer_field.shape
    plain = FieldPreprocessor(spitzer_field.data, **PP)
    padded = FieldPreprocessor(spitzer_field.data, pad=30, **PP)
    assert padded.shape == (h, w) and padded.filled.shape[1:] == (h, w)  # arrays not framed
    # windows inside are those of the plain field, also in one call with edge windows
    inside = ([0, 50, 60], [0, 40, 50], [40, 40, 40])
    np.testing.assert_array_equal(padded.windows(*inside), plain.windows(*inside))
    mixed = padded.windows([-20, 50], [40, 40], [40, 40])
    np.testing.assert_array_equal(mixed[1], plain.window(50, 40, 40))
    # a window half outside: a cut-out of its data, NaN outside the field
    edge = padded.window(-20, 40, 40)
    np.testing.assert_array_equal(mixed[0], edge)
    framed = np.pad(spitzer_field.data, ((0, 0), (30, 30), (30, 30)), constant_values=np.nan)
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
    stream = WindowStream(spitzer_field.data, [-20, 50], [40, 40], [40, 40], **PP)
    np.testing.assert_array_equal(stream[:], mixed)


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
