"""Segmentation losses (selected by name) and metrics for one sigmoid output channel.

Notation, for one patch: ``g`` the true mask (0/1), ``p`` the predicted probability, clipped
to ``[eps, 1 - eps]`` with ``eps = 1e-7``; sums run over the pixels of the patch:

    TP = Σ g p        FN = Σ g (1 - p)        FP = Σ (1 - g) p

and ``s = 1e-6`` is a smoothing constant. Overlap indices, per patch:

    Dice  D     = (2 TP + s) / (2 TP + FN + FP + s)
    Tversky TI_δ = (TP + s) / (TP + δ FN + (1 - δ) FP + s)

(δ weights false negatives and 1 − δ false positives: δ = 0.3 penalises false positives,
δ = 0.5 is Dice). Region losses are averaged over the patches of a batch; pixel losses over
all pixels. Every loss is 0 for a perfect prediction (up to ``eps``/``s`` terms).

``get_loss(name, params)`` returns the loss; the names and the parameters each accepts are in
:data:`LOSSES` and :data:`LOSS_DEFAULTS`. References: Lin et al. 2017 (focal, ICCV);
Milletari et al. 2016 (Dice, 3DV); Salehi et al. 2017 (Tversky, MLMI); Abraham & Khan 2019
(focal Tversky, ISBI); Taghanaki et al. 2019 (combo, CMIG 75, 24); Yeung et al. 2021
(mixed focal / focal Dice, "Focus U-Net", Comput. Biol. Med. 137, 104815; cosine Tversky in
their loss collection).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import skydetect  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from skydetect.schema import schema_defaults

EPS = 1e-7
SMOOTH = 1e-6

#: Parameters of each loss and their defaults: the schema's ``clusters.train.loss_params``
#: (reference values where it states them); the losses without parameters take none.
LOSS_DEFAULTS: dict[str, dict[str, float]] = {
    "binary_crossentropy": {},
    "dice_loss": {},
    **schema_defaults("clusters.train")["loss_params"],
}


def _tf():
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    return tf


def _prep(y_true, y_pred):
    """Masks as float32 in the prediction's shape; predictions clipped to [eps, 1 - eps].

    The clip passes gradients straight through: ``tf.clip_by_value`` alone has zero gradient
    outside the range, so a network whose sigmoid saturated below eps on every pixel (easy
    with ~0.2 % cluster pixels) would never recover.
    """
    tf = _tf()
    y_pred = tf.cast(y_pred, tf.float32)
    y_true = tf.cast(tf.reshape(y_true, tf.shape(y_pred)), tf.float32)
    clipped = tf.clip_by_value(y_pred, EPS, 1.0 - EPS)
    return y_true, y_pred + tf.stop_gradient(clipped - y_pred)


def _counts(g, p):
    """Per-patch TP, FN, FP (summed over every axis but the first)."""
    tf = _tf()
    axes = list(range(1, len(p.shape)))
    tp = tf.reduce_sum(g * p, axis=axes)
    fn = tf.reduce_sum(g * (1.0 - p), axis=axes)
    fp = tf.reduce_sum((1.0 - g) * p, axis=axes)
    return tp, fn, fp


def _tversky_index(g, p, delta):
    tp, fn, fp = _counts(g, p)
    return (tp + SMOOTH) / (tp + delta * fn + (1.0 - delta) * fp + SMOOTH)


def _one_minus(x):
    """1 - x, kept >= eps so that fractional powers have finite gradients."""
    tf = _tf()
    return tf.maximum(1.0 - x, EPS)


def binary_crossentropy(y_true, y_pred):
    """Binary cross-entropy, mean over pixels: ``L = -<g ln p + (1 - g) ln(1 - p)>``."""
    tf = _tf()
    g, p = _prep(y_true, y_pred)
    return -tf.reduce_mean(g * tf.math.log(p) + (1.0 - g) * tf.math.log(1.0 - p))


def focal_loss(alpha: float = 0.5, gamma: float = 2.0) -> Callable:
    """Focal loss (Lin et al. 2017), mean over pixels:

    ``L = -< α g (1 - p)^γ ln p + (1 - α)(1 - g) p^γ ln(1 - p) >``.

    γ down-weights easy pixels; α weights the cluster class (α = 0.5: no class weighting,
    the loss is then half the unweighted focal loss).
    """
    tf = _tf()

    def focal_loss(y_true, y_pred):
        g, p = _prep(y_true, y_pred)
        pos = alpha * g * tf.pow(1.0 - p, gamma) * tf.math.log(p)
        neg = (1.0 - alpha) * (1.0 - g) * tf.pow(p, gamma) * tf.math.log(1.0 - p)
        return -tf.reduce_mean(pos + neg)

    return focal_loss


def dice_loss(y_true, y_pred):
    """Soft Dice loss (Milletari et al. 2016): ``L = 1 - D``, mean over patches."""
    tf = _tf()
    g, p = _prep(y_true, y_pred)
    return tf.reduce_mean(1.0 - _tversky_index(g, p, 0.5))


def focal_dice_loss(delta: float = 0.5, gamma: float = 0.75) -> Callable:
    """Focal Dice loss (Yeung et al. 2021): ``L = (1 - TI_δ)^γ``, mean over patches.

    With δ = 0.5 the index is the Dice coefficient; γ < 1 enhances the loss of hard patches.
    """
    tf = _tf()

    def focal_dice_loss(y_true, y_pred):
        g, p = _prep(y_true, y_pred)
        return tf.reduce_mean(tf.pow(_one_minus(_tversky_index(g, p, delta)), gamma))

    return focal_dice_loss


def tversky_loss(delta: float = 0.3) -> Callable:
    """Tversky loss (Salehi et al. 2017): ``L = 1 - TI_δ``, mean over patches.

    δ = 0.3 (reference) weights false positives by 0.7 and false negatives by 0.3.
    """
    tf = _tf()

    def tversky_loss(y_true, y_pred):
        g, p = _prep(y_true, y_pred)
        return tf.reduce_mean(1.0 - _tversky_index(g, p, delta))

    return tversky_loss


def focal_tversky_loss(delta: float = 0.3, gamma: float = 0.75) -> Callable:
    """Focal Tversky loss (Abraham & Khan 2019): ``L = (1 - TI_δ)^γ``, mean over patches.

    Reference: γ = 0.75.
    """
    tf = _tf()

    def focal_tversky_loss(y_true, y_pred):
        g, p = _prep(y_true, y_pred)
        return tf.reduce_mean(tf.pow(_one_minus(_tversky_index(g, p, delta)), gamma))

    return focal_tversky_loss


def cosine_tversky_loss(delta: float = 0.3, gamma: float = 1.0) -> Callable:
    """Cosine Tversky loss: ``L = 1 - cos(π (1 - TI_δ) / 2)^γ``, mean over patches.

    The loss falls from 1 (TI = 0) to 0 (TI = 1), flattening near a perfect prediction. The
    collection of Yeung et al. writes ``1 - cos(π TI)^γ``, which is *largest* (2) for a perfect
    prediction and 0 for the worst; that sign error is not reproduced here.
    """
    tf = _tf()

    def cosine_tversky_loss(y_true, y_pred):
        g, p = _prep(y_true, y_pred)
        ti = tf.clip_by_value(_tversky_index(g, p, delta), 0.0, 1.0)
        c = tf.maximum(tf.cos(0.5 * math.pi * (1.0 - ti)), EPS)
        return tf.reduce_mean(1.0 - tf.pow(c, gamma))

    return cosine_tversky_loss


def combo_loss(alpha: float = 0.5, beta: float = 0.5) -> Callable:
    """Combo loss (Taghanaki et al. 2019): ``L = α WBCE_β + (1 - α)(1 - D)`` with

    ``WBCE_β = -< β g ln p + (1 - β)(1 - g) ln(1 - p) >`` (mean over pixels; β > 0.5 penalises
    false negatives more) and the Dice coefficient D averaged over patches. The paper writes
    ``α WBCE - (1 - α) D``; the constant ``1 - α`` is added here so that the minimum is 0.
    Reference: α = β = 0.5.
    """
    tf = _tf()

    def combo_loss(y_true, y_pred):
        g, p = _prep(y_true, y_pred)
        wbce = -tf.reduce_mean(
            beta * g * tf.math.log(p) + (1.0 - beta) * (1.0 - g) * tf.math.log(1.0 - p)
        )
        dice = tf.reduce_mean(_tversky_index(g, p, 0.5))
        return alpha * wbce + (1.0 - alpha) * (1.0 - dice)

    return combo_loss


def mixed_focal_loss(
    weight: float = 0.5, delta: float = 0.7, gamma: float = 0.75, gamma_focal: float = 2.0
) -> Callable:
    """Mixed focal loss (Yeung et al. 2021): ``L = λ (1 - TI_δ)^γ + (1 - λ) FL_γf``,

    the weighted sum of the focal Dice/Tversky term (δ, γ; reference δ = 0.7, γ = 0.75) and the
    unweighted focal loss ``FL_γf = -< g (1-p)^γf ln p + (1-g) p^γf ln(1-p) >`` (γf = 2),
    with λ = ``weight``.
    """
    fd = focal_dice_loss(delta=delta, gamma=gamma)
    fl = focal_loss(alpha=0.5, gamma=gamma_focal)

    def mixed_focal_loss(y_true, y_pred):
        return weight * fd(y_true, y_pred) + (1.0 - weight) * 2.0 * fl(y_true, y_pred)

    return mixed_focal_loss


_FACTORIES: dict[str, Callable] = {
    "binary_crossentropy": lambda: binary_crossentropy,
    "focal_loss": focal_loss,
    "dice_loss": lambda: dice_loss,
    "focal_dice_loss": focal_dice_loss,
    "tversky_loss": tversky_loss,
    "focal_tversky_loss": focal_tversky_loss,
    "cosine_tversky_loss": cosine_tversky_loss,
    "combo_loss": combo_loss,
    "mixed_focal_loss": mixed_focal_loss,
}
LOSSES = tuple(_FACTORIES)


def get_loss(name: str, params: dict[str, Any] | None = None) -> Callable:
    """The loss called ``name``, with ``params`` overriding :data:`LOSS_DEFAULTS[name]`."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    params = dict(params or {})
    unknown = set(params) - set(LOSS_DEFAULTS[name])
    if unknown:
        raise ValueError(
            f"loss {name!r}: unknown parameter(s) {sorted(unknown)}; "
            f"accepted: {sorted(LOSS_DEFAULTS[name]) or 'none'}"
        )
    kwargs = {**LOSS_DEFAULTS[name], **{k: float(v) for k, v in params.items()}}
    return _FACTORIES[name](**kwargs)


def _count_metric_class():
    tf = _tf()

    class OverlapMetric(tf.keras.metrics.Metric):
        """Stateful score of the thresholded prediction ``p > threshold`` over all pixels seen.

        ``kind``: ``dice`` = 2 TP / (2 TP + FP + FN), ``precision`` = TP / (TP + FP),
        ``recall`` = TP / (TP + FN) (0 when undefined). Only the last channel of ``y_pred`` is
        scored (the final output of a deep-supervision network stacked on the channel axis).
        """

        def __init__(self, kind="dice", threshold=0.5, name=None, **kwargs):
            super().__init__(name=name or kind, **kwargs)
            self.kind, self.threshold = kind, threshold
            self.tp = self.add_weight(name="tp", initializer="zeros", dtype=tf.float64)
            self.fp = self.add_weight(name="fp", initializer="zeros", dtype=tf.float64)
            self.fn = self.add_weight(name="fn", initializer="zeros", dtype=tf.float64)

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = y_pred[..., -1:]
            g = tf.cast(tf.reshape(y_true[..., :1], tf.shape(y_pred)) > 0.5, tf.float64)
            p = tf.cast(y_pred > self.threshold, tf.float64)
            self.tp.assign_add(tf.reduce_sum(g * p))
            self.fp.assign_add(tf.reduce_sum((1.0 - g) * p))
            self.fn.assign_add(tf.reduce_sum(g * (1.0 - p)))

        def result(self):
            if self.kind == "precision":
                num, den = self.tp, self.tp + self.fp
            elif self.kind == "recall":
                num, den = self.tp, self.tp + self.fn
            else:
                num, den = 2.0 * self.tp, 2.0 * self.tp + self.fp + self.fn
            return tf.cast(tf.math.divide_no_nan(num, den), tf.float32)

        def reset_state(self):
            for v in (self.tp, self.fp, self.fn):
                v.assign(0.0)

    return OverlapMetric


def segmentation_metrics(threshold: float = 0.5) -> list:
    """Dice, precision and recall of the thresholded prediction (names ``dice``,
    ``precision``, ``recall``; Keras prefixes ``val_`` on the validation set)."""
    cls = _count_metric_class()
    return [cls(kind, threshold) for kind in ("dice", "precision", "recall")]


def deep_supervision_loss(loss: Callable, n_outputs: int) -> Callable:
    """Mean of ``loss`` over the ``n_outputs`` channels of a stacked multi-output prediction.

    Each network output gets the weight ``1 / n_outputs``.
    """
    tf = _tf()

    def deep_supervision_loss(y_true, y_pred):
        y_true = y_true[..., :1]
        terms = [loss(y_true, y_pred[..., i : i + 1]) for i in range(n_outputs)]
        return tf.add_n(terms) / float(n_outputs)

    return deep_supervision_loss
