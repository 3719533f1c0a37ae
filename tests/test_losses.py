"""Segmentation losses: hand-computed values, minimum at a perfect prediction, gradients."""

import numpy as np
import pytest

import skydetect  # noqa: F401  (before tensorflow)

tf = pytest.importorskip("tensorflow")
from skydetect.clusters import losses as L  # noqa: E402

EPS, S = L.EPS, L.SMOOTH


def _np_counts(g, p):
    ax = tuple(range(1, g.ndim))
    return (g * p).sum(ax), (g * (1 - p)).sum(ax), ((1 - g) * p).sum(ax)


def _np_ti(g, p, delta):
    tp, fn, fp = _np_counts(g, p)
    return (tp + S) / (tp + delta * fn + (1 - delta) * fp + S)


def _np_focal(g, p, alpha, gamma):
    return -np.mean(
        alpha * g * (1 - p) ** gamma * np.log(p) + (1 - alpha) * (1 - g) * p**gamma * np.log(1 - p)
    )


def _np_loss(name, g, p, **k):
    """Independent numpy transcription of each docstring formula."""
    p = np.clip(p, EPS, 1 - EPS)
    bce = -np.mean(g * np.log(p) + (1 - g) * np.log(1 - p))
    if name == "binary_crossentropy":
        return bce
    if name == "focal_loss":
        return _np_focal(g, p, k["alpha"], k["gamma"])
    if name == "dice_loss":
        tp, fn, fp = _np_counts(g, p)
        return np.mean(1 - (2 * tp + S) / (2 * tp + fn + fp + S))
    if name in ("focal_dice_loss", "focal_tversky_loss"):
        return np.mean((1 - _np_ti(g, p, k["delta"])) ** k["gamma"])
    if name == "tversky_loss":
        return np.mean(1 - _np_ti(g, p, k["delta"]))
    if name == "cosine_tversky_loss":
        return np.mean(1 - np.cos(np.pi / 2 * (1 - _np_ti(g, p, k["delta"]))) ** k["gamma"])
    if name == "combo_loss":
        a, b = k["alpha"], k["beta"]
        wbce = -np.mean(b * g * np.log(p) + (1 - b) * (1 - g) * np.log(1 - p))
        return a * wbce + (1 - a) * (1 - np.mean(_np_ti(g, p, 0.5)))
    if name == "mixed_focal_loss":
        w = k["weight"]
        fd = np.mean((1 - _np_ti(g, p, k["delta"])) ** k["gamma"])
        return w * fd + (1 - w) * _np_focal(g, p, 0.5, k["gamma_focal"]) * 2
    raise KeyError(name)


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(3)
    g = np.zeros((3, 8, 8, 1), np.float32)
    g[0, 2:5, 2:5] = 1
    g[1, 0:2, 5:8] = 1
    g[2, 4:8, 0:3] = 1
    p = rng.uniform(0.02, 0.98, g.shape).astype(np.float32)
    return g, p


PARAMS = {
    "binary_crossentropy": {},
    "focal_loss": {"alpha": 0.25, "gamma": 2.0},
    "dice_loss": {},
    "focal_dice_loss": {"delta": 0.5, "gamma": 0.75},
    "tversky_loss": {"delta": 0.3},
    "focal_tversky_loss": {"delta": 0.3, "gamma": 0.75},
    "cosine_tversky_loss": {"delta": 0.3, "gamma": 1.5},
    "combo_loss": {"alpha": 0.4, "beta": 0.7},
    "mixed_focal_loss": {"weight": 0.3, "delta": 0.7, "gamma": 0.75, "gamma_focal": 2.0},
}


def test_all_nine_losses_listed():
    assert set(L.LOSSES) == set(PARAMS) and len(L.LOSSES) == 9
    assert set(L.LOSS_DEFAULTS) == set(PARAMS)


@pytest.mark.parametrize("name", list(PARAMS))
def test_loss_matches_numpy(name, arrays):
    g, p = arrays
    params = PARAMS[name]
    got = float(L.get_loss(name, params)(tf.constant(g), tf.constant(p)))
    want = _np_loss(
        name, g.astype(np.float64), p.astype(np.float64), **{**L.LOSS_DEFAULTS[name], **params}
    )
    assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert got > 0.01  # a random prediction is far from the minimum


@pytest.mark.parametrize("name", list(PARAMS))
def test_loss_defaults_match_numpy(name, arrays):
    g, p = arrays
    got = float(L.get_loss(name)(g, p))
    want = _np_loss(name, g.astype(np.float64), p.astype(np.float64), **L.LOSS_DEFAULTS[name])
    assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name", list(PARAMS))
def test_perfect_prediction_is_minimum(name, arrays):
    g, p = arrays
    loss = L.get_loss(name, PARAMS[name])
    perfect = float(loss(g, g))
    assert perfect == pytest.approx(0.0, abs=1e-3)
    # slightly wrong is worse, and much worse is worse still
    near = np.clip(g + 0.1 * (1 - 2 * g), 0, 1)
    assert perfect < float(loss(g, near)) < float(loss(g, p))


@pytest.mark.parametrize("name", list(PARAMS))
@pytest.mark.parametrize("where", ["random", "perfect"])
def test_gradients_finite(name, where, arrays):
    g, p = arrays
    x = tf.Variable(p if where == "random" else g)
    with tf.GradientTape() as tape:
        value = L.get_loss(name, PARAMS[name])(tf.constant(g), x)
    grad = tape.gradient(value, x).numpy()
    assert np.all(np.isfinite(grad))
    if where == "random":
        assert np.abs(grad).max() > 0
        # descending the gradient lowers the loss
        x2 = tf.constant(np.clip(p - 1e-3 * grad / np.abs(grad).max(), 1e-3, 1 - 1e-3))
        assert float(L.get_loss(name, PARAMS[name])(g, x2)) < float(value)


def test_tversky_delta_trades_false_positives_for_negatives():
    g = np.zeros((1, 8, 8, 1), np.float32)
    g[0, 2:6, 2:6] = 1
    fp = g.copy()
    fp[0, 0, 0:4] = 1  # 4 false positives
    fn = g.copy()
    fn[0, 2, 2:6] = 0  # 4 false negatives
    tv = L.get_loss("tversky_loss", {"delta": 0.3})  # reference: penalise false positives
    assert float(tv(g, fp)) > float(tv(g, fn))
    tv = L.get_loss("tversky_loss", {"delta": 0.7})
    assert float(tv(g, fp)) < float(tv(g, fn))
    # delta = 0.5 is the Dice loss
    assert float(L.get_loss("tversky_loss", {"delta": 0.5})(g, fp)) == pytest.approx(
        float(L.get_loss("dice_loss")(g, fp)), rel=1e-6
    )


def test_loss_accepts_masks_without_channel_axis(arrays):
    g, p = arrays
    loss = L.get_loss("dice_loss")
    assert float(loss(g[..., 0], p)) == pytest.approx(float(loss(g, p)))


def test_bad_names_and_parameters():
    with pytest.raises(ValueError, match="unknown loss 'dice'"):
        L.get_loss("dice")
    with pytest.raises(ValueError, match="tversky_loss.*'gamma'"):
        L.get_loss("tversky_loss", {"gamma": 2})


def test_metrics_on_known_counts():
    g = np.zeros((1, 4, 4, 1), np.float32)
    g[0, 0, :] = 1  # 4 true pixels
    p = np.zeros_like(g)
    p[0, 0, :3] = 0.9  # 3 TP
    p[0, 1, :2] = 0.8  # 2 FP ; 1 FN
    p[0, 2, :] = 0.4  # below threshold
    dice, prec, rec = L.segmentation_metrics()
    for m in (dice, prec, rec):
        m.update_state(g, p)
    assert float(dice.result()) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert float(prec.result()) == pytest.approx(3 / 5)
    assert float(rec.result()) == pytest.approx(3 / 4)
    dice.reset_state()
    assert float(dice.result()) == 0.0


def test_deep_supervision_loss_averages_outputs(arrays):
    g, p = arrays
    base = L.get_loss("dice_loss")
    stacked = np.concatenate([p, g, 1 - g], axis=-1)
    ds = L.deep_supervision_loss(base, 3)
    want = (float(base(g, p)) + float(base(g, g)) + float(base(g, 1 - g))) / 3
    assert float(ds(g, stacked)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("name", list(PARAMS))
def test_saturated_prediction_still_has_a_gradient(name):
    """All pixels predicted ~0 (a collapsed network): the loss must still push cluster pixels
    up, also below the eps clip."""
    g = np.zeros((2, 8, 8, 1), np.float32)
    g[:, 3:5, 3:5] = 1
    x = tf.Variable(np.full(g.shape, 1e-9, np.float32))
    with tf.GradientTape() as tape:
        value = L.get_loss(name, PARAMS[name])(tf.constant(g), x)
    grad = tape.gradient(value, x).numpy()
    assert np.all(np.isfinite(grad))
    assert np.all(grad[g == 1] < 0)  # raising p on cluster pixels lowers the loss
