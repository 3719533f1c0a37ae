"""Training crops (skydetect.bubbles.crops): augmentation of images and boxes, crop
geometry, seeded epochs."""

from __future__ import annotations

import numpy as np
from bubble_fixtures import PP, one_bubble

from skydetect.bubbles.crops import BubbleCrops, augment, crop_geometry, flip_boxes, rotate_boxes
from skydetect.bubbles.train_batches import make_targets
from skydetect.io import spitzer as sio


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


def test_crops_epochs_are_seeded_and_boxes_inside():
    spitzer_field = _toy_field()
    table = one_bubble(30.0, 0.0, maj=1.0)
    crops = BubbleCrops([spitzer_field], table, seed=4, **PP)
    a = list(crops.epoch(0))
    b = list(crops.epoch(0))
    c = list(crops.epoch(1))
    np.testing.assert_array_equal(a[0][0], b[0][0])
    assert not np.array_equal(a[0][0], c[0][0])
    for x, boxes in a + c:
        assert x.shape == (48, 48, 2) and len(boxes) == 1
        assert np.all((boxes >= 0) & (boxes <= 48))


def _toy_field():
    w, shape = sio.field_wcs(30, 0, 0.5, 0.3, 12.0)
    data = np.random.default_rng(0).normal(10, 1, (2, *shape)).astype(np.float32)
    return sio.SpitzerField(data, w, 12.0, "03000+0000")


def test_crops_give_unclear_bubbles_no_target(tmp_path):
    """An unclear bubble beside a clear one: the crop's don't-care box lands on it (after the
    augmentation too), and make_targets marks the priors over it -1, never 1 or 0."""
    from astropy.table import Table

    from skydetect.bubbles.catalog import bubble_boxes
    from skydetect.bubbles.crops import BubbleCrops
    from skydetect.bubbles.ssd import boxes as B_
    from skydetect.bubbles.ssd.boxes import IGNORE
    from skydetect.bubbles.ssd.priors import default_boxes
    from skydetect.io.spitzer import SpitzerField, field_wcs

    w, shape = field_wcs(30, 0, 0.5, 0.3, 12.0)
    t = Table()
    t["MWP"] = ["C", "U"]
    t["GLON"], t["GLAT"] = [30.0, 30.0 - 2.8 / 60], [0.0, 0.0]
    t["MajAxis"], t["MinAxis"], t["Reff"] = [1.0, 0.8], [1.0, 0.8], [1.0, 0.8]
    t["theta"], t["Ecc"] = [0.0, 0.0], [0.0, 0.0]
    t["CLEAR"] = [True, False]
    boxes = bubble_boxes(t, w, 12.0, 1.3)
    data = np.random.default_rng(0).normal(10, 1, (2, *shape)).astype(np.float32)
    for b in boxes:  # mark each bubble by a bright square in channel 0
        data[0, int(b[1]) : int(b[3]), int(b[0]) : int(b[2])] += 100 + 50 * (b is boxes[1])
    field = SpitzerField(data, w, 12.0, "03000+0000")
    crops = BubbleCrops([field], t, seed=3, half_width_factor=(3.0, 3.5), input_size=48)
    assert len(crops) == 1  # only the clear bubble makes crops
    priors = default_boxes([6, 3], [0.2, 0.5, 0.9], [[2], [2]])
    n_ign = 0
    for e in range(8):
        for x, pos, ign in crops.targets(e):
            assert len(pos) == 1
            if not len(ign):
                continue
            n_ign += 1
            # the don't-care box is where the unclear bubble's pixels are in the augmented crop
            b = np.clip(np.rint(ign[0]).astype(int), 0, 48)
            inner = x[b[1] + 1 : b[3] - 1, b[0] + 1 : b[2] - 1, 0]
            assert inner.size and inner.mean() > 0.5
            assert B_.intersection(ign, pos).max() == 0  # beside the clear bubble, not on it
            y = make_targets([pos], 48, priors, 0.5, [ign])
            labels = y[0, :, 4]
            assert (labels == IGNORE).any() and (labels == 1).any()
            assert np.all(y[0, labels == IGNORE, :4] == 0)
    assert n_ign > 0
