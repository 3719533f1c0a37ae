"""Each U-Net run picks its input bands from the shared datasets (one function decides)."""

import h5py
import numpy as np
import pytest

from skydetect.clusters.datasets import DatasetError, run_bands, select_bands
from skydetect.clusters.pipeline import dataset_info

ALL = ["100", "143", "217", "353", "545", "857", "y"]
RUNS = {"unet_hfi": {"bands": ALL[:6]}, "unet_hfi_y": {"bands": ALL}, "all": {}}


def test_run_bands_from_the_config():
    assert run_bands(RUNS, "unet_hfi", ALL) == ALL[:6]
    assert run_bands(RUNS, "unet_hfi_y", ALL) == ALL
    assert run_bands(RUNS, "all", ALL) == ALL
    with pytest.raises(DatasetError, match="'clusters.train.runs.unet_hfi_y.bands'.*'y'"):
        run_bands(RUNS, "unet_hfi_y", ALL[:6])
    with pytest.raises(DatasetError, match="no run 'other'"):
        run_bands(RUNS, "other", ALL)


def test_select_bands_keeps_the_chosen_channels_in_order(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 8, 8, 7)).astype(np.float32)
    src = tmp_path / "train.h5"
    with h5py.File(src, "w") as f:
        f["inputs"] = x
        f["masks"] = (rng.random((10, 8, 8)) > 0.9).astype(np.uint8)
        f["glon"] = np.arange(10.0)
        f.attrs["bands"] = ALL
        f.attrs["split"] = "train"
    n = select_bands(src, tmp_path / "sub.h5", ["857", "100"])
    assert n == 10
    info = dataset_info(tmp_path / "sub.h5")
    assert info.bands == ("857", "100") and info.n == 10
    with h5py.File(tmp_path / "sub.h5", "r") as f:
        np.testing.assert_array_equal(f["inputs"][...], x[..., [5, 0]])
        np.testing.assert_array_equal(f["glon"][...], np.arange(10.0))
        assert f.attrs["split"] == "train" and len(f.attrs["content_sha256"]) == 64
    with pytest.raises(DatasetError, match="not \\['z'\\]"):
        select_bands(src, tmp_path / "bad.h5", ["z"])
    assert not (tmp_path / "bad.h5").exists()
