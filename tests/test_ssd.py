"""SSD core: default boxes, encoding, matching, hard-negative mining, loss, NMS, model."""

import numpy as np
import pytest

import skydetect  # noqa: F401  (before TensorFlow)
from skydetect.bubbles.ssd import boxes as B
from skydetect.bubbles.ssd.loss import SSDLoss, hard_negative_mask
from skydetect.bubbles.ssd.model import build_ssd, load_model, resolve_config, save_model
from skydetect.bubbles.ssd.priors import default_boxes, linear_scales

tf = pytest.importorskip("tensorflow")


def test_ssd300_prior_layout():
    cfg = resolve_config({"backbone": "vgg16"})
    p = default_boxes([38, 19, 10, 5, 3, 1], cfg["scales"], cfg["aspect_ratios"], clip=False)
    assert p.shape == (8732, 4)
    # ssd.pytorch SSD300: min sizes 30, 60, 111, 162, 213, 264 px; max 60 .. 315 px
    np.testing.assert_allclose(
        np.array(cfg["scales"]) * 300, [30, 60, 111, 162, 213, 264, 315], atol=1e-3
    )
    # first cell of conv4_3: centre (0.5/38, 0.5/38), squares 30 px and sqrt(30*60) px
    np.testing.assert_allclose(p[0], [0.5 / 38, 0.5 / 38, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(p[1, 2:], [np.sqrt(0.02)] * 2, rtol=1e-6)
    np.testing.assert_allclose(p[2, 2:], [0.1 * np.sqrt(2), 0.1 / np.sqrt(2)], rtol=1e-6)
    # second cell moves along x (column) first; the last box is centred on the 1x1 map
    np.testing.assert_allclose(p[4, :2], [1.5 / 38, 0.5 / 38], rtol=1e-6)
    np.testing.assert_allclose(p[-1, :2], [0.5, 0.5])


def test_linear_scales_plain():
    np.testing.assert_allclose(linear_scales(4, 0.2, 0.8), [0.2, 0.35, 0.5, 0.65, 0.8])


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    priors = default_boxes([4, 2], [0.2, 0.5, 0.8], [[2], [2, 3]])
    gt = np.column_stack(
        [rng.uniform(0.1, 0.9, (len(priors), 2)), rng.uniform(0.05, 0.9, (len(priors), 2))]
    )
    t = B.encode(gt, priors)
    np.testing.assert_allclose(B.decode(t, priors), gt, rtol=1e-5, atol=1e-6)
    # a box equal to its prior encodes to zero
    np.testing.assert_allclose(B.encode(priors, priors), 0, atol=1e-6)
    # variances: a shift by one prior width is 1 / 0.1 = 10
    shifted = priors.copy()
    shifted[:, 0] += priors[:, 2]
    np.testing.assert_allclose(B.encode(shifted, priors)[:, 0], 10, rtol=1e-5)
    corners = B.to_corners(gt)
    np.testing.assert_allclose(B.to_centre(corners), gt, atol=1e-12)


def test_iou_hand_values():
    a = np.array([[0, 0, 2, 2]])
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 4, 4], [0, 0, 1, 1]])
    np.testing.assert_allclose(B.iou(a, b)[0], [1 / 7, 1, 0, 0.25])


def test_match_threshold_and_best_prior():
    # four priors (centre form); corner boxes in comments
    priors = np.array(
        [
            [0.25, 0.25, 0.5, 0.5],  # [0, 0, .5, .5]
            [0.30, 0.25, 0.5, 0.5],  # [.05, 0, .55, .5]
            [0.75, 0.75, 0.5, 0.5],  # [.5, .5, 1, 1]
            [0.75, 0.75, 0.1, 0.1],  # small one
        ]
    )
    gt = np.array(
        [
            [0.0, 0.0, 0.5, 0.5],  # IoU 1 with prior 0, 0.818 with prior 1
            [0.6, 0.6, 0.9, 0.9],  # best: prior 2 with IoU 0.36 < 0.5 -> forced
        ]
    )
    loc, labels = B.match(gt, priors, threshold=0.5)
    np.testing.assert_array_equal(labels, [1, 1, 1, 0])
    np.testing.assert_allclose(B.decode(loc[:3], priors[:3]), B.to_centre(gt[[0, 0, 1]]), atol=1e-6)
    assert np.all(loc[3] == 0)
    # without ground truth everything is background
    loc, labels = B.match(np.zeros((0, 4)), priors)
    assert labels.sum() == 0 and np.all(loc == 0)


def test_match_dont_care_priors_over_unclear_bubbles():
    priors = np.array(
        [
            [0.25, 0.25, 0.5, 0.5],  # [0, 0, .5, .5]: the clear bubble
            [0.75, 0.75, 0.5, 0.5],  # [.5, .5, 1, 1]: holds the unclear bubble
            [0.70, 0.70, 0.1, 0.1],  # [.65, .65, .75, .75]: covers 1/4 of it
            [0.25, 0.75, 0.5, 0.5],  # empty sky
        ]
    )
    clear = np.array([[0.0, 0.0, 0.5, 0.5]])
    unclear = np.array([[0.6, 0.6, 0.8, 0.8]])
    loc, labels = B.match(clear, priors, 0.5, ignore_corners=unclear, ignore_cover=1 / 3)
    np.testing.assert_array_equal(labels, [1, B.IGNORE, 0, 0])
    assert np.all(loc[1:] == 0)
    # a prior that is a positive stays one even over an unclear bubble
    _, labels = B.match(clear, priors, 0.5, ignore_corners=clear)
    assert labels[0] == 1
    # a lower cover threshold also drops the small prior; no clear bubble: still don't care
    _, labels = B.match(np.zeros((0, 4)), priors, 0.5, ignore_corners=unclear, ignore_cover=0.2)
    np.testing.assert_array_equal(labels, [0, B.IGNORE, B.IGNORE, 0])


def test_unclear_priors_carry_no_loss():
    """Whatever the network predicts at priors over an unclear bubble, the loss and its
    gradient there are zero; labelled background instead, the same prediction costs."""
    loss = SSDLoss(neg_pos_ratio=3, min_negatives=2)
    n = 8
    y_true = np.zeros((1, n, 5), np.float32)
    y_true[0, 0, 4] = 1  # a bubble at prior 0
    y_true[0, [3, 4], 4] = B.IGNORE  # priors 3 and 4 over an unclear bubble
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (1, n, 6)).astype(np.float32)
    base[0, :, 4:] = [3.0, -3.0]  # confident background ...
    wild = base.copy()
    wild[0, [3, 4], :] = [[9, -9, 4, 4, -8.0, 8.0], [-5, 5, 1, 2, -6.0, 6.0]]  # ... or not
    terms = [[float(v) for v in loss.terms(y_true, y)] for y in (base, wild)]
    assert terms[0] == pytest.approx(terms[1], rel=1e-6)
    x = tf.Variable(wild)
    with tf.GradientTape() as tape:
        total = loss(tf.constant(y_true), x)
    g = tape.gradient(total, x).numpy()[0]
    assert np.all(g[[3, 4]] == 0) and np.any(g[0] != 0)
    # the same wild predictions at background priors are hard negatives and cost
    y_bg = y_true.copy()
    y_bg[0, [3, 4], 4] = 0
    assert float(loss(y_bg, wild)) > float(loss(y_true, wild)) + 5
    # hard-negative mining never picks a don't-care prior, even as the hardest
    bg = tf.constant([[0.1, 0.2, 0.3, 0.9, 0.8, 0.4, 0.05, 0.0]])
    pos = tf.constant([[True] + [False] * 7])
    ign = tf.constant([[False, False, False, True, True, False, False, False]])
    mask = hard_negative_mask(bg, pos, neg_pos_ratio=3, ignore=ign).numpy()
    np.testing.assert_array_equal(mask[0], [0, 1, 1, 0, 0, 1, 0, 0])


def test_hard_negative_mining_hand_case():
    bg = tf.constant(
        [[0.1, 0.9, 0.5, 0.7, 0.3, 0.8, 0.2, 0.05], [0.4, 0.3, 0.2, 0.1, 0.9, 0.6, 0.0, 0.0]]
    )
    pos = tf.constant([[True, False, False, False, False, False, False, True], [False] * 8])
    mask = hard_negative_mask(bg, pos, neg_pos_ratio=3, min_negatives=2).numpy()
    # image 0: 2 positives -> 6 negatives of the 6 available (all non-positives)
    np.testing.assert_array_equal(mask[0], [0, 1, 1, 1, 1, 1, 1, 0])
    # image 1: no positive -> min_negatives = 2 hardest: 0.9 and 0.6
    np.testing.assert_array_equal(mask[1], [0, 0, 0, 0, 1, 1, 0, 0])
    mask = hard_negative_mask(bg, pos, neg_pos_ratio=1, min_negatives=0).numpy()
    np.testing.assert_array_equal(mask[0], [0, 1, 0, 0, 0, 1, 0, 0])  # 0.9, 0.8
    assert mask[1].sum() == 0


def test_loss_terms():
    loss = SSDLoss(neg_pos_ratio=3, min_negatives=0)
    n = 8
    y_true = np.zeros((1, n, 5), np.float32)
    y_true[0, 0, :4] = [1.0, -2.0, 0.5, 0.0]
    y_true[0, 0, 4] = 1
    y_pred = np.zeros((1, n, 6), np.float32)
    y_pred[0, 0, :4] = [1.0, 0.0, 0.0, 0.0]  # errors 0, 2, 0.5, 0 -> smooth-L1 1.5 + .125
    y_pred[0, :, 4] = 5.0  # confident background everywhere
    y_pred[0, 1, 4:] = [0.0, 5.0]  # ... except box 1: a confident false bubble
    loc_l, conf_l = (float(v) for v in loss.terms(y_true, y_pred))
    assert loc_l == pytest.approx(1.625)
    ce_pos = np.log1p(np.exp(5.0))  # the positive box predicts background
    ce_bad = np.log1p(np.exp(5.0))
    ce_easy = np.log1p(np.exp(-5.0))
    # 1 positive + 3 hardest negatives (box 1 and two easy ones)
    assert conf_l == pytest.approx(ce_pos + ce_bad + 2 * ce_easy, rel=1e-5)
    assert float(loss(y_true, y_pred)) == pytest.approx(loc_l + conf_l)


def test_nms_keeps_best_of_overlapping():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0.5, 0, 10.5, 10]])
    scores = np.array([0.6, 0.9, 0.7, 0.8])
    keep = B.nms(boxes, scores, iou_threshold=0.5)
    np.testing.assert_array_equal(keep, [1, 2])
    assert len(B.nms(np.zeros((0, 4)), np.zeros(0), 0.5)) == 0


@pytest.mark.parametrize("backbone,n_priors", [("vgg16", 8732), ("light", None)])
def test_model_outputs_match_priors(backbone, n_priors):
    model, priors = build_ssd({"backbone": backbone})
    if n_priors:
        assert priors.shape == (n_priors, 4)
        assert list(model.feature_map_sizes) == [38, 19, 10, 5, 3, 1]
    assert model.output_shape == (None, len(priors), 6)


def test_heads_order_matches_priors(tmp_path):
    """With zero regression heads, the decoded boxes are exactly the priors, in order; a
    saved model rebuilds with identical outputs."""
    model, priors = build_ssd(
        {
            "backbone": "light",
            "input_size": 64,
            "aspect_ratios": [[2], [2]],
            "scales": [0.2, 0.5, 0.9],
        }
    )
    assert list(model.feature_map_sizes) == [8, 4]
    for layer in model.layers:
        if layer.name.startswith("loc_") and not layer.name.startswith("loc_flat"):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    x = np.random.default_rng(1).random((2, 64, 64, 2)).astype(np.float32)
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(B.decode(out[0, :, :4], priors), priors, atol=1e-6)
    # a feature at one cell only changes that cell's boxes: check the order via a gradient
    inp = tf.constant(x[:1])
    with tf.GradientTape() as tape:
        tape.watch(inp)
        y = model(inp, training=False)
        k = 4 * (8 * 2 + 5)  # map 0, row 2, column 5, first box
        target = y[0, k, 4]
    g = tape.gradient(target, inp).numpy()[0].sum(axis=-1)
    w = np.abs(g) / np.abs(g).sum()
    yy, xx = np.mgrid[:64, :64] + 0.5
    # receptive field centred on the prior centre (cx = 5.5/8, cy = 2.5/8 of 64 px), within
    # less than a cell (8 px; TF "same" padding of strided convs shifts it by a few px)
    assert abs((w * xx).sum() - priors[k, 0] * 64) < 6
    assert abs((w * yy).sum() - priors[k, 1] * 64) < 6
    save_model(model, tmp_path, extra={"threshold": 0.7})
    model2, priors2, meta = load_model(tmp_path)
    assert meta["threshold"] == 0.7
    np.testing.assert_array_equal(priors2, priors)
    np.testing.assert_allclose(model2.predict(x, verbose=0), out, rtol=1e-5, atol=1e-5)


def test_bad_configs():
    with pytest.raises(ValueError, match="unknown SSD backbone"):
        resolve_config({"backbone": "resnet"})
    with pytest.raises(ValueError, match="scales"):
        resolve_config({"backbone": "light", "scales": [0.1, 0.2]})
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_model("/nonexistent/dir")
