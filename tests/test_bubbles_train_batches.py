"""skydetect.bubbles.train_batches: SSD targets and the epoch's batches of bubbles and negatives."""

import numpy as np
import pytest
from ssd_fixtures import S, _ring

from skydetect.bubbles.train_batches import epoch_batches, make_targets
from skydetect.bubbles.train_settings import TrainSettings


def test_targets_and_batches():
    from skydetect.bubbles.ssd.priors import default_boxes

    priors = default_boxes([4, 2], [0.4, 0.7, 0.95], [[2], [2]])
    y = make_targets([np.array([[4.0, 4.0, 24.0, 24.0]]), np.zeros((0, 4))], S, priors)
    assert y.shape == (2, len(priors), 5)
    assert y[0, :, 4].sum() >= 1 and y[1, :, 4].sum() == 0
    xs, bs = _ring(np.random.default_rng(0), 5)
    s = TrainSettings(batch_bubbles=2, batch_negatives=3)
    batches = list(epoch_batches(xs, bs, np.zeros((6, S, S, 2)), np.ones(6), s, _rng()))
    assert [len(x) for x, _, _ in batches] == [5, 5, 4]  # 2+3, 2+3, 1+3
    assert sum(len(b) for _, bx, _ in batches for b in bx) == 5  # every bubble box once
    with pytest.raises(ValueError, match="weights"):
        list(epoch_batches(xs, bs, np.zeros((6, S, S, 2)), np.zeros(6), s, _rng()))


def _rng(seed=1):
    return np.random.default_rng(seed)


def test_negatives_drawn_with_their_group_weights():
    """Each negative carries its index as pixel value: the draws over many epochs follow the
    per-group weights (weight 0 never, weight 3 three times as often as weight 1)."""
    xs, bs = _ring(_rng(0), 4)
    neg = np.broadcast_to(np.arange(6.0)[:, None, None, None], (6, S, S, 2)).astype(np.float32)
    w = np.array([1, 1, 3, 3, 0, 0.0])
    s = TrainSettings(batch_bubbles=2, batch_negatives=4)
    seen = np.zeros(6)
    rng = _rng(7)
    for _ in range(300):
        for x, bx, _ in epoch_batches(xs, bs, neg, w, s, rng):
            ids = x[len(x) - s.batch_negatives :, 0, 0, 0].astype(int)
            np.add.at(seen, ids, 1)
            assert all(len(b) == 0 for b in bx[-s.batch_negatives :])  # negatives: no boxes
    assert seen[4] == seen[5] == 0
    frac = seen / seen.sum()
    np.testing.assert_allclose(frac[:4], [1 / 8, 1 / 8, 3 / 8, 3 / 8], atol=0.02)
