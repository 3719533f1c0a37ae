"""SSD multibox loss: smooth-L1 on positive boxes + cross-entropy with hard-negative mining.

Targets ``y_true`` (B, N, 5): 4 encoded regression targets (see :func:`.boxes.match`) and the
class label (0 background, 1.. object, -1 "don't care": a prior over an unclear bubble, see
:func:`.boxes.match`) as a float. Predictions ``y_pred`` (B, N, 4 + C).

A "don't care" prior carries no loss at all: it is neither a positive nor a candidate for
hard-negative mining.

Per image, all positives enter the classification loss together with the ``neg_pos_ratio``
times as many hardest negatives (highest background cross-entropy); images without any object
(negative crops) contribute their ``min_negatives`` hardest negatives, so that they still teach
the network what a bubble is not. Both terms are divided by the number of positives in the
batch (at least 1), as in Liu et al. (2016).
"""

from __future__ import annotations

import skydetect  # noqa: F401  (legacy Keras switch before TensorFlow)


def hard_negative_mask(
    bg_loss, positive, neg_pos_ratio: float = 3.0, min_negatives: int = 0, ignore=None
):
    """Boolean mask (B, N) of the hardest negatives per image.

    ``bg_loss`` (B, N) is the classification loss of each box if it were background; the
    ``max(ratio * n_pos, min_negatives)`` boxes that are neither positive nor ``ignore``
    ("don't care") with the highest loss are selected (ties broken by index).
    """
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    positive = tf.cast(positive, tf.bool)
    excluded = positive if ignore is None else tf.logical_or(positive, tf.cast(ignore, tf.bool))
    n_pos = tf.reduce_sum(tf.cast(positive, tf.int32), axis=1, keepdims=True)
    n_free = tf.reduce_sum(1 - tf.cast(excluded, tf.int32), axis=1, keepdims=True)
    n_neg = tf.maximum(
        tf.cast(tf.cast(n_pos, tf.float32) * neg_pos_ratio, tf.int32), int(min_negatives)
    )
    n_neg = tf.minimum(n_neg, n_free)
    ranked = tf.where(excluded, tf.fill(tf.shape(bg_loss), -1.0), tf.cast(bg_loss, tf.float32))
    order = tf.argsort(ranked, axis=1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=1, stable=True)
    return tf.logical_and(rank < n_neg, tf.logical_not(excluded))


class SSDLoss:
    """Callable loss ``(y_true, y_pred) -> scalar``; also reports its two terms via
    :meth:`terms`."""

    def __init__(self, neg_pos_ratio: float = 3.0, min_negatives: int = 8, alpha: float = 1.0):
        self.neg_pos_ratio = float(neg_pos_ratio)
        self.min_negatives = int(min_negatives)
        self.alpha = float(alpha)

    def terms(self, y_true, y_pred):
        import tensorflow as tf  # lazy: slow to import; only the TF functions need it

        y_true = tf.cast(y_true, tf.float32)
        y_pred = tf.cast(y_pred, tf.float32)
        loc_t, labels = y_true[..., :4], tf.cast(tf.round(y_true[..., 4]), tf.int32)
        loc_p, logits = y_pred[..., :4], y_pred[..., 4:]
        positive = labels > 0
        ignore = labels < 0
        labels = tf.maximum(labels, 0)
        pos_f = tf.cast(positive, tf.float32)
        n_pos = tf.maximum(tf.reduce_sum(pos_f), 1.0)

        diff = tf.abs(loc_t - loc_p)
        smooth_l1 = tf.reduce_sum(tf.where(diff < 1.0, 0.5 * diff**2, diff - 0.5), axis=-1)
        loc_loss = tf.reduce_sum(smooth_l1 * pos_f) / n_pos

        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        bg_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.zeros_like(labels), logits=logits
        )
        neg = hard_negative_mask(
            tf.stop_gradient(bg_loss), positive, self.neg_pos_ratio, self.min_negatives, ignore
        )
        sel = tf.cast(tf.logical_or(positive, neg), tf.float32)
        conf_loss = tf.reduce_sum(ce * sel) / n_pos
        return loc_loss, conf_loss

    def __call__(self, y_true, y_pred):
        loc_loss, conf_loss = self.terms(y_true, y_pred)
        return conf_loss + self.alpha * loc_loss
