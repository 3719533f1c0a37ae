"""U-Net family segmentation networks from ``keras_unet_collection``, selected by name.

Every network maps a ``(size, size, n_bands)`` patch to **one sigmoid channel** (the
probability that a pixel belongs to a cluster); a softmax on one channel (a defect of the
reference, whose output is then constant) is never used.

Names (those of the reference) and the library builder behind each:

============== ================= ==========================================================
name           builder           notes
============== ================= ==========================================================
``unet``       ``unet_2d``
``vnet``       ``vnet_2d``       always built with ``unpool=False`` (transposed convolutions):
                                 the library's upsampling path does not build otherwise
``unet_plus``  ``unet_plus_2d``  UNet++; optional deep supervision
``r2u_net``    ``r2_unet_2d``    recurrent residual U-Net
``attn_net``   ``att_unet_2d``   attention U-Net
``resunet_a``  ``resunet_a_2d``  dilation rates ``dilation_num`` (default 1, 3, 15, 31)
``u2net``      ``u2net_2d``      U²-Net; optional deep supervision
``unet_3plus`` ``unet_3plus_2d`` UNet 3+; optional deep supervision
============== ================= ==========================================================

Deep supervision (``deep_supervision: true``, only for ``unet_plus``, ``u2net`` and
``unet_3plus``): the network has one sigmoid output per decoder level, the *last* being the
final output. Training applies the loss to every output with equal weights ``1/n_outputs``
(:func:`skydetect.clusters.train.train`); metrics and inference use the final output only
(:func:`final_output_model`).

A trained network is stored as ``weights.h5`` (``save_weights``) plus ``model.json``
(architecture name and parameters, bands, input size, normalisation); :func:`load_model`
rebuilds it from code and loads the weights — no pickles, no saved graphs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import skydetect  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from skydetect.io.atomic import atomic_path
from skydetect.schema import schema_defaults

log = logging.getLogger(__name__)

ARCHITECTURES = {
    "unet": "unet_2d",
    "vnet": "vnet_2d",
    "unet_plus": "unet_plus_2d",
    "r2u_net": "r2_unet_2d",
    "attn_net": "att_unet_2d",
    "resunet_a": "resunet_a_2d",
    "u2net": "u2net_2d",
    "unet_3plus": "unet_3plus_2d",
}
DEEP_SUPERVISION = {"unet_plus", "u2net", "unet_3plus"}

#: Model parameters and their defaults (those of the reference, see config/schema.yaml).
DEFAULT_PARAMS: dict[str, Any] = schema_defaults("clusters.model")  # the reference network
_POOL = {"max": "max", "ave": "ave", "conv": False}
_UNPOOL = {"bilinear": "bilinear", "nearest": "nearest", "transpose": False}

MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.h5"


def model_params(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Complete ``params`` with :data:`DEFAULT_PARAMS` and check them; return a new dict."""
    out = dict(DEFAULT_PARAMS)
    unknown = set(params or {}) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown model parameter(s) {sorted(unknown)}; known: {sorted(out)}")
    out.update(params or {})
    if out["architecture"] not in ARCHITECTURES:
        raise ValueError(
            f"model parameter 'architecture': unknown {out['architecture']!r}; "
            f"choose one of {sorted(ARCHITECTURES)}"
        )
    if len(out["filter_num"]) < 2 or any(int(f) < 1 for f in out["filter_num"]):
        raise ValueError(
            f"model parameter 'filter_num': need >= 2 positive numbers, got {out['filter_num']}"
        )
    if out["pool"] not in _POOL:
        raise ValueError(f"model parameter 'pool': {out['pool']!r} not in {sorted(_POOL)}")
    if out["unpool"] not in _UNPOOL:
        raise ValueError(f"model parameter 'unpool': {out['unpool']!r} not in {sorted(_UNPOOL)}")
    if out["deep_supervision"] and out["architecture"] not in DEEP_SUPERVISION:
        raise ValueError(
            f"model parameter 'deep_supervision': architecture {out['architecture']!r} has none "
            f"(only {sorted(DEEP_SUPERVISION)})"
        )
    out["filter_num"] = [int(f) for f in out["filter_num"]]
    return out


@contextlib.contextmanager
def keras_policy(policy: str | None):
    """Keras's global mixed-precision policy set to ``policy`` inside the block, and the one
    before it restored after (``None``: left as it is)."""
    if policy is None:
        yield
        return
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def build_model(
    input_shape,
    params: dict[str, Any] | None = None,
    name: str | None = None,
    policy: str | None = None,
):
    """Build the network named ``params['architecture']`` for inputs of ``input_shape``.

    ``input_shape`` is ``(size, size, n_bands)``; ``size`` must be divisible by
    ``2**(len(filter_num) - 1)``. Returns an uncompiled ``tf.keras.Model`` whose output(s)
    are float32 sigmoid maps of shape ``(batch, size, size, 1)`` (also under a mixed
    precision policy). ``policy``: the Keras mixed-precision policy it is built under
    (e.g. ``mixed_bfloat16``; default: the global one), which is restored afterwards.
    """
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it
    from keras_unet_collection import models as kuc  # lazy: ML envs only, imports TensorFlow

    p = model_params(params)
    arch = p["architecture"]
    size = int(input_shape[0])
    depth = len(p["filter_num"])
    if size % 2 ** (depth - 1):
        raise ValueError(
            f"input size {size} is not divisible by 2**{depth - 1} "
            f"(model parameter 'filter_num' has {depth} levels)"
        )
    common = dict(
        n_labels=1,
        activation=p["activation"],
        output_activation="Sigmoid",
        batch_norm=bool(p["batch_norm"]),
        pool=_POOL[p["pool"]],
        unpool=_UNPOOL[p["unpool"]],
        name=name or arch,
    )
    shape = tuple(int(s) for s in input_shape)
    fn = getattr(kuc, ARCHITECTURES[arch])
    stacks = dict(stack_num_down=p["stack_num_down"], stack_num_up=p["stack_num_up"])
    if arch == "vnet":
        common["unpool"] = False
        kwargs = dict(filter_num=p["filter_num"])
    elif arch == "resunet_a":
        kwargs = dict(filter_num=p["filter_num"], dilation_num=list(p["dilation_num"]))
    elif arch == "u2net":
        kwargs = dict(filter_num_down=p["filter_num"], deep_supervision=p["deep_supervision"])
    elif arch == "unet_3plus":
        kwargs = dict(
            filter_num_down=p["filter_num"],
            deep_supervision=p["deep_supervision"],
            stack_num_down=p["stack_num_down"],
            stack_num_up=1,
        )
    elif arch == "unet_plus":
        kwargs = dict(filter_num=p["filter_num"], deep_supervision=p["deep_supervision"], **stacks)
    else:  # unet, r2u_net, attn_net
        kwargs = dict(filter_num=p["filter_num"], **stacks)
    # the library prints a lot of configuration chatter on stdout: keep it in the log only
    chatter = io.StringIO()
    with keras_policy(policy), contextlib.redirect_stdout(chatter):
        model = fn(shape, **kwargs, **common)
    if chatter.getvalue().strip():
        log.debug("keras_unet_collection: %s", chatter.getvalue().strip())
    outputs = model.outputs
    if any(o.dtype != tf.float32 for o in outputs):  # mixed precision: float32 sigmoid maps
        outputs = [
            tf.keras.layers.Activation("linear", dtype="float32", name=f"float32_out{i}")(o)
            for i, o in enumerate(outputs)
        ]
        model = tf.keras.Model(model.inputs, outputs, name=model.name)
    for o in model.outputs:
        if tuple(o.shape[1:]) != (shape[0], shape[1], 1):
            raise RuntimeError(f"{arch}: unexpected output shape {tuple(o.shape)}")
    return model


def final_output_model(model):
    """The network restricted to its final output (identity for single-output networks)."""
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    if len(model.outputs) == 1:
        return model
    return tf.keras.Model(model.inputs, model.outputs[-1], name=f"{model.name}_final")


def write_model_json(model_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write ``model.json`` atomically. ``info`` needs ``params``, ``bands``, ``input_size``."""
    for key in ("params", "bands", "input_size"):
        if key not in info:
            raise ValueError(f"model.json: missing key {key!r}")
    info = dict(info)
    info["params"] = model_params(info["params"])
    info.setdefault("architecture", info["params"]["architecture"])
    path = Path(model_dir) / MODEL_JSON
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
    return path


def read_model_json(model_dir: str | Path) -> dict[str, Any]:
    """Read and check ``model_dir/model.json``."""
    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model description (model.json) here")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    for key in ("params", "bands", "input_size"):
        if key not in info:
            raise ValueError(f"{path}: missing key {key!r}")
    return info


def load_model(model_dir: str | Path, final_only: bool = True, policy: str = "float32"):
    """Rebuild the network described by ``model_dir/model.json`` and load ``weights.h5``.

    Returns a ``tf.keras.Model`` mapping ``(batch, size, size, n_bands)`` normalised inputs
    (band order ``info['bands']``, see :func:`read_model_json`) to ``(batch, size, size, 1)``
    probabilities. With ``final_only`` (default) a deep-supervision network is reduced to its
    final output. ``policy``: the Keras mixed-precision policy the network is built under
    (weights stay float32; e.g. ``mixed_bfloat16`` computes in bfloat16).
    """
    model_dir = Path(model_dir)
    info = read_model_json(model_dir)
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights file missing")
    size = int(info["input_size"])
    model = build_model((size, size, len(info["bands"])), info["params"], policy=policy)
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError) as err:
        raise ValueError(
            f"{weights}: does not match the network in {model_dir / MODEL_JSON}: {err}"
        ) from err
    return final_output_model(model) if final_only else model
