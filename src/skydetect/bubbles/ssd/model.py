"""The SSD network in tf.keras (Keras 2 API via tf-keras), with backbones chosen by name.

The model maps a batch ``(B, S, S, C)`` (C = 2: 24 µm, 8 µm) to ``(B, N, 4 + n_classes)``:
per default box, 4 regression outputs (see :mod:`.boxes`) and class logits (class 0 is
background). Backbones:

- ``vgg16``: SSD300 (Liu et al. 2016) trained from scratch: 300 x 300 input, feature maps
  38/19/10/5/3/1 (conv4_3 with L2 normalisation, dilated fc6/fc7, extra layers), 8732 boxes;
- ``light``: a small BatchNorm/ReLU CNN for CPU runs: input 128-160 px, feature maps at
  strides 8/16/32/64 (16/8/4/2 at 128 px).

The architecture is described by a JSON-able dict (see :func:`resolve_config`); a trained model
is saved as that dict (``model.json``) plus ``weights.h5`` and rebuilt from code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import skydetect  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
from skydetect.io.atomic import atomic_path
from skydetect.schema import schema_defaults

from .boxes import decode, to_corners
from .priors import boxes_per_location, default_boxes, linear_scales

BACKBONES = ("vgg16", "light")
_SSD_DEFAULTS = schema_defaults("bubbles.ssd")

#: What ``scales: null`` and ``aspect_ratios: null`` mean for each backbone
_DEFAULTS = {
    "vgg16": {
        "input_size": 300,
        "scales": [round(s, 6) for s in linear_scales(6, 0.2, 0.88, first=0.1)],
        "aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
    },
    "light": {
        "input_size": 128,
        "scales": [0.1, 0.25, 0.45, 0.7, 0.95],
        "aspect_ratios": [[2], [2], [2], [2]],
    },
}


def resolve_config(config: dict | None = None) -> dict:
    """Complete architecture description with the backbone's defaults filled in."""
    cfg = dict(config or {})
    backbone = cfg.get("backbone", _SSD_DEFAULTS["backbone"])
    if backbone not in BACKBONES:
        raise ValueError(f"unknown SSD backbone {backbone!r} (known: {', '.join(BACKBONES)})")
    out = {
        "backbone": backbone,
        "n_channels": 2,
        "n_classes": 2,
        "width": _SSD_DEFAULTS["width"],
        **_DEFAULTS[backbone],
    }
    for k, v in cfg.items():
        if v is not None:
            out[k] = v
    out["scales"] = [float(s) for s in out["scales"]]
    out["aspect_ratios"] = [[float(a) for a in ar] for ar in out["aspect_ratios"]]
    if len(out["scales"]) != len(out["aspect_ratios"]) + 1:
        raise ValueError(
            f"SSD config: {len(out['aspect_ratios'])} feature maps need "
            f"{len(out['aspect_ratios']) + 1} scales, got {len(out['scales'])}"
        )
    return out


def _tf():
    import tensorflow as tf  # lazy: sky-env drivers (no TF) import this module

    return tf


def _l2norm_layer():
    tf = _tf()

    class L2Normalization(tf.keras.layers.Layer):
        """Channel-wise L2 normalisation with a learnable scale (SSD conv4_3, init 20)."""

        def build(self, input_shape):
            self.gamma = self.add_weight(
                name="gamma",
                shape=(input_shape[-1],),
                initializer=tf.keras.initializers.Constant(20.0),
            )

        def call(self, x):
            return tf.math.l2_normalize(x, axis=-1) * self.gamma

    return L2Normalization


def _vgg16_features(x, width: float):
    L = _tf().keras.layers

    def c(n):
        return max(8, int(round(n * width)))

    def conv(x, n, k=3, name=None, **kw):
        return L.Conv2D(
            c(n), k, padding=kw.pop("padding", "same"), activation="relu", name=name, **kw
        )(x)

    for i, (n, reps) in enumerate([(64, 2), (128, 2), (256, 3)], start=1):
        for r in range(reps):
            x = conv(x, n, name=f"conv{i}_{r + 1}")
        x = L.MaxPool2D(2, padding="same", name=f"pool{i}")(x)  # 300 -> 150 -> 75 -> 38
    for r in range(3):
        x = conv(x, 512, name=f"conv4_{r + 1}")
    f1 = _l2norm_layer()(name="conv4_3_norm")(x)  # 38
    x = L.MaxPool2D(2, padding="same", name="pool4")(x)  # 19
    for r in range(3):
        x = conv(x, 512, name=f"conv5_{r + 1}")
    x = L.MaxPool2D(3, strides=1, padding="same", name="pool5")(x)
    x = conv(x, 1024, dilation_rate=6, name="fc6")
    f2 = conv(x, 1024, k=1, name="fc7")  # 19
    x = conv(f2, 256, k=1, name="conv8_1")
    f3 = conv(x, 512, strides=2, name="conv8_2")  # 10
    x = conv(f3, 128, k=1, name="conv9_1")
    f4 = conv(x, 256, strides=2, name="conv9_2")  # 5
    x = conv(f4, 128, k=1, name="conv10_1")
    f5 = conv(x, 256, padding="valid", name="conv10_2")  # 3
    x = conv(f5, 128, k=1, name="conv11_1")
    f6 = conv(x, 256, padding="valid", name="conv11_2")  # 1
    return [f1, f2, f3, f4, f5, f6]


def _light_features(x, width: float, n_maps: int):
    L = _tf().keras.layers

    def block(x, n, name, stride=1):
        x = L.Conv2D(
            max(8, int(round(n * width))),
            3,
            strides=stride,
            padding="same",
            use_bias=False,
            name=f"{name}_conv",
        )(x)
        x = L.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)  # short CPU runs
        return L.ReLU(name=f"{name}_relu")(x)

    x = block(x, 16, "b1", stride=2)  # /2
    x = block(x, 32, "b2", stride=2)  # /4
    x = block(x, 48, "b3a")
    x = block(x, 64, "b3b", stride=2)  # /8
    x = block(x, 96, "f1")
    feats = [x]
    for k in range(1, n_maps):
        x = block(x, 128, f"f{k + 1}a", stride=2)
        x = block(x, 128, f"f{k + 1}b")
        feats.append(x)
    return feats


def build_ssd(config: dict | None = None):
    """Build the SSD; returns ``(model, priors)`` with priors (N, 4) centre form, float32."""
    tf = _tf()
    L = tf.keras.layers
    cfg = resolve_config(config)
    s = int(cfg["input_size"])
    inp = tf.keras.Input((s, s, int(cfg["n_channels"])), name="image")
    n_maps = len(cfg["aspect_ratios"])
    if cfg["backbone"] == "vgg16":
        if n_maps != 6:
            raise ValueError("SSD config: the vgg16 backbone has 6 feature maps")
        feats = _vgg16_features(inp, float(cfg["width"]))
    else:
        feats = _light_features(inp, float(cfg["width"]), n_maps)
    n_cls = int(cfg["n_classes"])
    locs, confs, sizes = [], [], []
    for k, f in enumerate(feats):
        nb = boxes_per_location(cfg["aspect_ratios"][k])
        fs = int(f.shape[1])
        if fs < 1 or f.shape[2] != fs:
            raise ValueError(f"SSD config: feature map {k} has shape {f.shape}")
        sizes.append(fs)
        loc = L.Conv2D(nb * 4, 3, padding="same", name=f"loc_{k}")(f)
        conf = L.Conv2D(nb * n_cls, 3, padding="same", name=f"conf_{k}")(f)
        locs.append(L.Reshape((fs * fs * nb, 4), name=f"loc_flat_{k}")(loc))
        confs.append(L.Reshape((fs * fs * nb, n_cls), name=f"conf_flat_{k}")(conf))
    loc = L.Concatenate(axis=1, name="loc")(locs) if len(locs) > 1 else locs[0]
    conf = L.Concatenate(axis=1, name="conf")(confs) if len(confs) > 1 else confs[0]
    out = L.Concatenate(axis=-1, name="ssd")([loc, conf])
    model = tf.keras.Model(inp, out, name=f"ssd_{cfg['backbone']}")
    priors = default_boxes(sizes, cfg["scales"], cfg["aspect_ratios"])
    if priors.shape[0] != out.shape[1]:
        raise AssertionError(f"{priors.shape[0]} priors for {out.shape[1]} model outputs")
    model.ssd_config = cfg
    model.feature_map_sizes = sizes
    return model, priors


def save_model(model, directory: str | Path, extra: dict | None = None) -> None:
    """Write ``model.json`` (architecture config + ``extra``) and ``weights.h5`` atomically."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with atomic_path(d / "weights.h5") as tmp:
        model.save_weights(str(tmp))
    meta = {"ssd": model.ssd_config, **(extra or {})}
    with atomic_path(d / "model.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))


def load_model(directory: str | Path):
    """Rebuild a saved SSD; returns ``(model, priors, meta)`` (``meta`` = the model.json dict)."""
    d = Path(directory)
    meta_path = d / "model.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"SSD model config not found: {meta_path}")
    meta = json.loads(meta_path.read_text())
    if "ssd" not in meta:
        raise ValueError(f"{meta_path}: no 'ssd' architecture entry")
    model, priors = build_ssd(meta["ssd"])
    weights = d / "weights.h5"
    if not weights.exists():
        raise FileNotFoundError(f"SSD weights not found: {weights}")
    model.load_weights(str(weights))
    return model, priors, meta


def predict_boxes(model, priors: np.ndarray, images: np.ndarray, batch_size: int = 32):
    """Run the SSD on ``images`` (B, S, S, C); returns ``(boxes, scores)``.

    ``boxes`` (B, N, 4) in corner form normalised to the input, ``scores`` (B, N) the bubble
    probability (softmax of the class logits, class 1).
    """
    tf = _tf()
    out = model.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0)
    boxes = to_corners(decode(out[..., :4], priors))
    scores = tf.nn.softmax(out[..., 4:], axis=-1).numpy()[..., 1]
    return boxes, scores
