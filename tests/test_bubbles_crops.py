"""skydetect.bubbles.crops: training crops of catalogue bubbles."""

import numpy as np

from skydetect.bubbles.train_batches import make_targets


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
    tile = SpitzerField(data, w, 12.0, "03000+0000")
    crops = BubbleCrops([tile], t, seed=3, k_range=(3.0, 3.5), input_size=48)
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
