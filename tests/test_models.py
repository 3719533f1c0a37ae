"""The eight U-Net architectures: build, one training step, save/rebuild round trip."""

import json

import numpy as np
import pytest

import skydetect  # noqa: F401  (before tensorflow)

tf = pytest.importorskip("tensorflow")
from skydetect.clusters import losses as L  # noqa: E402
from skydetect.clusters import models as M  # noqa: E402

TINY = [4, 8, 16]
SHAPE = (64, 64, 3)


def _batch(n=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *SHAPE)).astype(np.float32)
    y = np.zeros((n, 64, 64, 1), np.float32)
    y[:, 20:30, 30:40] = 1
    return x, y


HEAVY = {"u2net", "resunet_a"}  # ~15 s each on 2 cores: slow marker


@pytest.mark.parametrize(
    "arch",
    [pytest.param(a, marks=pytest.mark.slow) if a in HEAVY else a for a in M.ARCHITECTURES],
)
def test_architecture_builds_and_trains_one_step(arch):
    tf.keras.utils.set_random_seed(1)
    model = M.build_model(SHAPE, {"architecture": arch, "filter_num": TINY})
    assert len(model.outputs) == 1
    x, y = _batch()
    out = model.predict(x, verbose=0)
    assert out.shape == (2, 64, 64, 1)
    assert np.all((out >= 0) & (out <= 1))
    assert out.std() > 0  # a sigmoid map, not a constant (softmax on one channel would be 1)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=L.get_loss("dice_loss"))
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)]
    assert any(changed)


@pytest.mark.parametrize("arch", sorted(M.DEEP_SUPERVISION))
def test_deep_supervision_outputs(arch):
    model = M.build_model(
        SHAPE, {"architecture": arch, "filter_num": TINY, "deep_supervision": True}
    )
    assert len(model.outputs) > 1
    assert all(tuple(o.shape[1:]) == (64, 64, 1) for o in model.outputs)
    final = M.final_output_model(model)
    x, _ = _batch(1)
    np.testing.assert_allclose(
        final.predict(x, verbose=0), model.predict(x, verbose=0)[-1], atol=1e-6
    )


def test_vnet_is_built_with_transposed_convolutions():
    model = M.build_model(SHAPE, {"architecture": "vnet", "filter_num": TINY, "unpool": "bilinear"})
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Conv2DTranspose" in kinds and "UpSampling2D" not in kinds


def test_parameters_reach_the_network():
    plain = M.build_model(SHAPE, {"filter_num": TINY})
    bn = M.build_model(SHAPE, {"filter_num": TINY, "batch_norm": True})
    assert not any(isinstance(lay, tf.keras.layers.BatchNormalization) for lay in plain.layers)
    assert any(isinstance(lay, tf.keras.layers.BatchNormalization) for lay in bn.layers)
    deeper = M.build_model(SHAPE, {"filter_num": [4, 8, 16, 32]})
    assert deeper.count_params() > plain.count_params()
    convs = [lay for lay in plain.layers if isinstance(lay, tf.keras.layers.Conv2D)]
    assert max(c.filters for c in convs) == 16


def test_defaults_are_the_reference():
    p = M.model_params()
    assert p["architecture"] == "unet" and p["filter_num"] == [64, 128, 256, 512, 1024]
    assert p["activation"] == "ReLU" and p["batch_norm"] is False
    assert p["pool"] == "max" and p["unpool"] == "bilinear"
    assert p["dilation_num"] == [1, 3, 15, 31]


def test_bad_parameters():
    with pytest.raises(ValueError, match="architecture.*'transunet'"):
        M.build_model(SHAPE, {"architecture": "transunet"})
    with pytest.raises(ValueError, match="not divisible"):
        M.build_model((60, 60, 3), {"filter_num": [4, 8, 16, 32]})
    with pytest.raises(ValueError, match="deep_supervision"):
        M.model_params({"architecture": "unet", "deep_supervision": True})
    with pytest.raises(ValueError, match="unknown model parameter"):
        M.model_params({"filters": [1, 2]})


def _save(model, tmp_path, params, bands=("143", "217", "353")):
    model.save_weights(str(tmp_path / M.WEIGHTS_FILE))
    M.write_model_json(
        tmp_path,
        {"params": params, "bands": list(bands), "input_size": 64, "normalisation": {"x": 1}},
    )


@pytest.mark.parametrize(
    "params",
    [
        {"architecture": "unet", "filter_num": TINY},
        {"architecture": "unet_3plus", "filter_num": TINY, "deep_supervision": True},
    ],
)
def test_load_model_round_trip(tmp_path, params):
    tf.keras.utils.set_random_seed(5)
    model = M.build_model(SHAPE, params)
    _save(model, tmp_path, params)
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["architecture"] == params["architecture"] and info["bands"] == ["143", "217", "353"]
    assert info["normalisation"] == {"x": 1}
    tf.keras.utils.set_random_seed(99)  # a rebuilt network starts from other random weights
    loaded = M.load_model(tmp_path)
    x, _ = _batch(2, seed=4)
    want = model.predict(x, verbose=0)
    want = want[-1] if isinstance(want, list) else want
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    assert len(loaded.outputs) == 1


def test_load_model_failures(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        M.load_model(tmp_path)
    params = {"architecture": "unet", "filter_num": TINY}
    M.write_model_json(
        tmp_path, {"params": params, "bands": ["143", "217", "353"], "input_size": 64}
    )
    with pytest.raises(FileNotFoundError, match="weights.h5"):
        M.load_model(tmp_path)
    other = M.build_model(SHAPE, {"architecture": "unet", "filter_num": [4, 8, 32]})
    other.save_weights(str(tmp_path / M.WEIGHTS_FILE))
    with pytest.raises(ValueError, match="does not match"):
        M.load_model(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        M.read_model_json(tmp_path)
