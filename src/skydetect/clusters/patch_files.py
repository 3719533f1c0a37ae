"""Patch files: writing (streamed, atomic) and reading the patches of
:mod:`skydetect.clusters.patches`.

Layout: see ``docs/dataflow.md`` (inputs, masks, glon, glat, angle, flip, tile, cluster_ids =
row numbers in the training catalogue, padded with -1).
"""

from __future__ import annotations

import h5py
import numpy as np

from skydetect.io.atomic import atomic_path

from .patches import PATCH_ARRAYS, PatchConfig, PatchSet


def write_patches(path, patches, cfg: PatchConfig, attrs: dict, extra=None) -> int:
    """Write a PatchSet, or stream an iterable of PatchSet chunks, to a patch file atomically
    (datasets chunked by 64 patches); ``extra(h5file)``, if given, adds to the file before it
    is closed (the cover's combination index). Returns the number of patches written."""
    s, b, k = cfg.size, len(cfg.bands), cfg.max_ids
    chunks = [patches] if isinstance(patches, PatchSet) else patches
    meta = dict(patches.attrs) if isinstance(patches, PatchSet) else {}
    dtypes = {
        "inputs": np.float32,
        "masks": np.uint8,
        "glon": np.float64,
        "glat": np.float64,
        "angle": np.float32,
        "flip": bool,
        "tile": np.int16,
        "cluster_ids": np.int64,
    }
    shapes = {"inputs": (s, s, b), "masks": (s, s), "cluster_ids": (k,)}
    n = 0
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            ds = {}
            for key in PATCH_ARRAYS:
                shape = shapes.get(key, ())
                ds[key] = f.create_dataset(
                    key, (0, *shape), dtypes[key], maxshape=(None, *shape), chunks=(64, *shape)
                )
            for ps in chunks:
                m = len(ps)
                if m == 0:
                    continue
                for key in PATCH_ARRAYS:
                    ds[key].resize(n + m, axis=0)
                    ds[key][n:] = np.asarray(getattr(ps, key), dtype=dtypes[key])
                n += m
            f.attrs["bands"] = list(cfg.bands)
            f.attrs["size"] = s
            f.attrs["pixel_arcmin"] = cfg.pixel_arcmin
            f.attrs["sampling"] = cfg.sampling
            f.attrs["normalised"] = False
            for key, v in {**meta, **attrs}.items():
                f.attrs[key] = v
            f.attrs["n_patches"] = n
            if extra is not None:
                extra(f)
    return n


def read_patches(path) -> PatchSet:
    """Read a patch (or dataset) file completely."""
    with h5py.File(path, "r") as f:
        for k in PATCH_ARRAYS:
            if k not in f:
                raise ValueError(f"patch file {path} has no '{k}' dataset")
        return PatchSet(
            f["inputs"][...],
            f["masks"][...],
            f["glon"][...],
            f["glat"][...],
            f["angle"][...],
            f["flip"][...],
            f["tile"][...],
            f["cluster_ids"][...],
            dict(f.attrs),
        )
