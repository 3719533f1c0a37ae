"""Normalisation: MAD and mode-fit scales, training statistics applied unchanged everywhere."""

import h5py
import numpy as np
import pytest

from skydetect.clusters import datasets, normalise
from skydetect.clusters import patches as P
from skydetect.clusters.patch_files import write_patches


def test_mad_sigma_of_a_gaussian():
    x = np.random.default_rng(0).normal(3.0, 2.0, 200_000)
    assert np.isclose(normalise.mad_sigma(x), 2.0, rtol=0.01)


def test_mode_fit_ignores_a_positive_tail():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1.0, 200_000), rng.exponential(20.0, 60_000)])
    s_fit = normalise.mode_fit_sigma(x)
    assert abs(s_fit - 1.0) < 0.1
    assert normalise.mad_sigma(x) > 1.2  # the MAD is pulled up by the tail


def test_fit_and_apply_is_arcsinh_of_scaled_input():
    rng = np.random.default_rng(2)
    x = np.stack([rng.normal(0, 5, (20, 8, 8)), rng.normal(0, 0.01, (20, 8, 8))], -1)
    stats = normalise.fit(x, ["100", "y"], "mad")
    y = normalise.apply(x, stats, ["100", "y"])
    assert y.dtype == np.float32
    s = [stats["bands"]["100"]["sigma"], stats["bands"]["y"]["sigma"]]
    assert np.allclose(y, np.arcsinh(x / np.array(s)), atol=1e-5)
    assert 0.6 < np.median(np.abs(y)) < 0.75  # ~ MAD of a unit Gaussian after scaling
    # bands are matched by name: a different order is rejected only if a band is missing
    with pytest.raises(normalise.NormalisationError, match=r"\['857'\]"):
        normalise.apply(x, stats, ["100", "857"])


def test_bad_method_and_constant_band():
    x = np.zeros((2, 4, 4, 1))
    with pytest.raises(normalise.NormalisationError, match="clusters.normalise.method"):
        normalise.fit(x, ["100"], "std")
    with pytest.raises(normalise.NormalisationError, match="band 100"):
        normalise.fit(x, ["100"], "mad")


def _patch_file(path, scale, n, seed, bands=("a", "b")):
    rng = np.random.default_rng(seed)
    cfg = P.PatchConfig(bands=list(bands), size=8)
    ps = P.PatchSet(
        (rng.normal(0, 1, (n, 8, 8, len(bands))) * scale).astype(np.float32),
        (rng.random((n, 8, 8)) < 0.1).astype(np.uint8),
        rng.uniform(0, 360, n),
        rng.uniform(-90, 90, n),
        np.zeros(n, np.float32),
        np.zeros(n, bool),
        np.full(n, 3, np.int16),
        np.full((n, 8), -1, np.int64),
        {"nside": 64, "tile": 3},
    )
    write_patches(path, ps, cfg, {})


def test_statistics_from_training_only_and_applied_unchanged(tmp_path):
    _patch_file(tmp_path / "t1.h5", np.array([2.0, 10.0]), 30, 0)
    _patch_file(tmp_path / "t2.h5", np.array([2.0, 10.0]), 0, 1)  # an empty tile
    _patch_file(tmp_path / "v.h5", np.array([50.0, 50.0]), 20, 2)  # very different split
    stats = datasets.fit_normalisation([tmp_path / "t1.h5", tmp_path / "t2.h5"], ["a", "b"])
    assert np.isclose(stats["bands"]["a"]["sigma"], 2.0, rtol=0.05)
    assert np.isclose(stats["bands"]["b"]["sigma"], 10.0, rtol=0.05)
    n = datasets.assemble(
        [tmp_path / "v.h5"], tmp_path / "validation.h5", stats, ["a", "b"], "validation"
    )
    assert n == 20
    with h5py.File(tmp_path / "v.h5") as f:
        raw = f["inputs"][...]
    with h5py.File(tmp_path / "validation.h5") as f:
        assert f.attrs["normalised"] and f.attrs["split"] == "validation"
        assert f["inputs"].chunks[0] == 64
        got = f["inputs"][...]
        assert f["masks"].dtype == np.uint8 and f["tile"][0] == 3
    # validation scaled with the training sigma, not its own
    assert np.allclose(got, normalise.apply(raw, stats, ["a", "b"]))
    assert np.median(np.abs(got[..., 0])) > 2.0


def test_assemble_rejects_mismatched_bands(tmp_path):
    _patch_file(tmp_path / "t1.h5", 1.0, 5, 0, bands=("a", "b"))
    _patch_file(tmp_path / "t2.h5", 1.0, 5, 0, bands=("a", "c"))
    stats = datasets.fit_normalisation([tmp_path / "t1.h5"], ["a", "b"])
    with pytest.raises(datasets.DatasetError, match=r"t2.h5 has bands \['a', 'c'\]"):
        datasets.assemble(
            [tmp_path / "t1.h5", tmp_path / "t2.h5"], tmp_path / "x.h5", stats, ["a", "b"], "train"
        )
    assert not (tmp_path / "x.h5").exists()


def test_no_training_patches_is_an_error(tmp_path):
    _patch_file(tmp_path / "t.h5", 1.0, 0, 0)
    with pytest.raises(datasets.DatasetError, match="hold no patches"):
        datasets.fit_normalisation([tmp_path / "t.h5"], ["a", "b"])
