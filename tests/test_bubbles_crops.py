"""Training crops (skydetect.bubbles.crops): augmentation of images and boxes, crop
geometry, seeded epochs."""

from __future__ import annotations

import numpy as np
from bubble_fixtures import PP, one_bubble

from skydetect.bubbles.crops import BubbleCrops, augment, crop_geometry, flip_boxes, rotate_boxes
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
