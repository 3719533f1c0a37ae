"""Negative windows (skydetect.bubbles.negatives): sampling away from bubbles, the
window-size fit, the negatives file with its group table."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from bubble_fixtures import PP

from skydetect.bubbles.masks import mask_field
from skydetect.bubbles.negative_groups import (
    group_table,
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
from skydetect.schema import schema_defaults


def test_negative_windows_avoid_masked_pixels(spitzer_field, truth):
    masked, mask = mask_field(spitzer_field, truth, radius_reff=0.25)
    bad = mask | ~np.isfinite(spitzer_field.data).all(axis=0)
    rng = np.random.default_rng(5)
    x0, y0, size = sample_windows(masked.data, rng, 200, np.log(4.0), 0.6, min_size_px=8)
    assert len(x0) == 200
    h, w = spitzer_field.shape
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
    """bubbles.negatives settings of the negatives tests: the schema's, ``per_field`` windows."""
    return {**schema_defaults("bubbles.negatives"), "per_field": per_field, "min_size_px": 8}


def test_negatives_file_and_groups_round_trip(tmp_path, spitzer_field, truth):
    masked, _ = mask_field(spitzer_field, truth)
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
    table = group_table(
        ["03000+0000"] * 40,
        np.arange(40),
        labels,
        3,
        drop_groups=[2],
        group_weights=[1.0, 0.5, 1.0],
    )
    write_group_table(tmp_path / "groups.ecsv", table)
    got = read_negatives([path], tmp_path / "groups.ecsv")
    assert len(got["x0"]) == (labels != 2).sum()
    assert set(got["group"]) <= {0, 1}
    np.testing.assert_allclose(got["weight"], np.where(got["group"] == 1, 0.5, 1.0))
    assert not isinstance(got["inputs"], np.ndarray)  # lazy: rows are read when indexed
    np.testing.assert_array_equal(got["inputs"][:], inputs[labels != 2])
    pick = np.array([5, 1, 1, 3])  # unsorted, repeated: a batch draw
    np.testing.assert_array_equal(got["inputs"][pick], inputs[labels != 2][pick])
    with pytest.raises(ValueError, match="group_weights"):
        group_table(["f"], [0], [0], 3, group_weights=[1.0])


def test_negative_size_fit_uses_training_fields_only(spitzer_field, truth):
    """Large clear bubbles of a test and a validation field must not move the window-size fit:
    only the training field's bubbles (here 1' and 1.5', clear) set mu and sigma."""
    masked, _ = mask_field(spitzer_field, truth)
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
