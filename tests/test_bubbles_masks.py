"""Bubble masks (skydetect.bubbles.masks): catalogue bubbles' discs set to NaN."""

from __future__ import annotations

import numpy as np
import pytest

from skydetect.bubbles import catalog as cat
from skydetect.bubbles.masks import disc_mask, mask_discs, mask_field


def test_masked_discs_are_nan_and_nothing_else_changes(spitzer_field, truth):
    original = spitzer_field.data.copy()
    masked, mask = mask_field(spitzer_field, truth, radius_reff=0.25, clear_only=True)
    np.testing.assert_array_equal(spitzer_field.data, original)  # input untouched
    assert np.all(np.isnan(masked.data[:, mask]))
    np.testing.assert_array_equal(masked.data[:, ~mask], original[:, ~mask])
    # every clear bubble's centre pixel is masked; an unclear bubble's centre is not, unless it
    # lies in a clear bubble's disc; nothing is masked away from every clear centre
    x, y = cat.bubble_pixels(truth, spitzer_field.wcs)
    clear = np.asarray(truth["CLEAR"], bool)
    r_px = 0.25 * np.asarray(truth["Reff"], float) * 60 / spitzer_field.pixel_arcsec
    inside = (np.floor(x + 0.5) >= 0) & (np.floor(x + 0.5) < spitzer_field.shape[1])
    inside &= (np.floor(y + 0.5) >= 0) & (np.floor(y + 0.5) < spitzer_field.shape[0])
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


def test_default_mask_covers_every_catalogue_bubble(spitzer_field, truth):
    masked, mask = mask_field(spitzer_field, truth)  # default: clear and unclear
    np.testing.assert_array_equal(masked.mask, mask)
    x, y = cat.bubble_pixels(truth, spitzer_field.wcs)
    n_unclear = 0
    for xi, yi, clear in zip(x, y, truth["CLEAR"], strict=True):
        xc, yc = int(np.floor(xi + 0.5)), int(np.floor(yi + 0.5))
        if 0 <= xc < spitzer_field.shape[1] and 0 <= yc < spitzer_field.shape[0]:
            assert mask[yc, xc]
            n_unclear += not clear
    assert n_unclear > 0  # the test field has unclear bubbles, and they are masked
    _, clear_mask = mask_field(spitzer_field, truth, clear_only=True)
    assert clear_mask.sum() < mask.sum()


def test_disc_radius():
    m = disc_mask((50, 50), 20.0, 25.0, 6.0)
    assert m[25, 26] and m[25, 20 + 6] and not m[25, 20 + 7] and not m[25 + 7, 20]
    assert m.sum() == pytest.approx(np.pi * 36, rel=0.15)
    tiny = disc_mask((10, 10), 3.2, 4.4, 0.1)
    assert tiny.sum() == 1 and tiny[4, 3]
    out, _ = mask_discs(np.ones((2, 10, 10), np.float32), [3], [4], [1.0])
    assert np.isnan(out[:, 4, 3]).all() and np.isnan(out[0]).sum() == 5
