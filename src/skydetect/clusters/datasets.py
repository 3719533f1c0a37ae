"""Normalisation statistics from the training patches and assembly of the split datasets.

One HDF5 file per split (``results/datasets/{split}.h5``), written by streaming the per-tile
patch files (memory: one tile at a time), normalised with
:func:`skydetect.clusters.normalise.apply`, chunked by ``chunk`` patches so training can
stream it. Patches are stored in tile order: shuffle at training time.
"""

from __future__ import annotations

import hashlib

import h5py
import numpy as np

from skydetect.clusters import normalise
from skydetect.io.atomic import atomic_path
from skydetect.schema import schema_defaults

_NORMALISE = schema_defaults("clusters.normalise")

__all__ = [
    "DatasetError",
    "check_patch_files",
    "fit_normalisation",
    "assemble",
    "content_hash",
    "PER_PATCH",
]

PER_PATCH = ("glon", "glat", "angle", "flip", "tile", "cluster_ids")
STAGE = 4


class DatasetError(ValueError):
    """Inconsistent patch files (bands, size, missing datasets)."""


def check_patch_files(paths, bands) -> dict:
    """Common attributes of the patch files; errors name the offending file."""
    common = None
    for p in paths:
        with h5py.File(p, "r") as f:
            for k in ("inputs", "masks", *PER_PATCH):
                if k not in f:
                    raise DatasetError(f"patch file {p} has no '{k}' dataset")
            fb = [str(b) for b in f.attrs["bands"]]
            if fb != [str(b) for b in bands]:
                raise DatasetError(f"patch file {p} has bands {fb}, expected {list(bands)}")
            a = {
                k: f.attrs[k] for k in ("size", "pixel_arcmin", "sampling", "nside") if k in f.attrs
            }
            a = {k: (v.item() if hasattr(v, "item") else v) for k, v in a.items()}
        if common is None:
            common = a
        elif a != common:
            raise DatasetError(f"patch file {p} has geometry {a}, others {common}")
    return common or {}


def fit_normalisation(
    paths, bands, method=_NORMALISE["method"], max_patches=_NORMALISE["max_patches"], seed=0
) -> dict:
    """Statistics from (a seeded random subset of at most ``max_patches``) training patches."""
    if not paths:
        raise DatasetError("no training patch files to compute the normalisation from")
    check_patch_files(paths, bands)
    counts = []
    for p in paths:
        with h5py.File(p, "r") as f:
            counts.append(f["inputs"].shape[0])
    total = int(sum(counts))
    if total == 0:
        raise DatasetError(
            f"the {len(paths)} training patch files hold no patches (empty catalogue or tiles?)"
        )
    rng = np.random.default_rng([seed, STAGE])
    take = np.sort(rng.choice(total, size=min(total, max_patches), replace=False))
    parts, start = [], 0
    for p, n in zip(paths, counts, strict=True):
        sel = take[(take >= start) & (take < start + n)] - start
        if sel.size:
            with h5py.File(p, "r") as f:
                parts.append(f["inputs"][np.sort(sel)])
        start += n
    stats = normalise.fit(np.concatenate(parts), bands, method)
    stats["n_patches"] = int(len(take))
    stats["n_training_patches"] = total
    return stats


def assemble(paths, out_path, stats, bands, split: str, chunk: int = 64) -> int:
    """Concatenate patch files into one normalised, chunked dataset; returns N."""
    if not paths:
        raise DatasetError(f"no patch files to assemble into the {split} dataset")
    common = check_patch_files(paths, bands)
    n_total = 0
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        ds = {}
        for p in paths:
            with h5py.File(p, "r") as f:
                n = f["inputs"].shape[0]
                if not ds:
                    s = f["inputs"].shape[1]
                    b = f["inputs"].shape[3]
                    k = f["cluster_ids"].shape[1]
                    ds["inputs"] = out.create_dataset(
                        "inputs",
                        (0, s, s, b),
                        np.float32,
                        maxshape=(None, s, s, b),
                        chunks=(chunk, s, s, b),
                    )
                    ds["masks"] = out.create_dataset(
                        "masks", (0, s, s), np.uint8, maxshape=(None, s, s), chunks=(chunk, s, s)
                    )
                    for key in PER_PATCH:
                        shape = f[key].shape[1:]
                        ds[key] = out.create_dataset(
                            key, (0, *shape), f[key].dtype, maxshape=(None, *shape)
                        )
                    kmax = k
                if f["cluster_ids"].shape[1] != kmax:
                    raise DatasetError(f"patch file {p}: cluster_ids width differs")
                if n == 0:
                    continue
                for d in ds.values():
                    d.resize(n_total + n, axis=0)
                x = normalise.apply(f["inputs"][...], stats, bands)
                ds["inputs"][n_total:] = x
                ds["masks"][n_total:] = f["masks"][...]
                for key in PER_PATCH:
                    ds[key][n_total:] = f[key][...]
                n_total += n
        out.attrs.update(common)
        out.attrs["bands"] = [str(b) for b in bands]
        out.attrs["split"] = split
        out.attrs["normalised"] = True
        out.attrs["normalisation_method"] = stats.get("method", "")
        out.attrs["n_source_files"] = len(paths)
        out.attrs["content_sha256"] = content_hash(out)
    return n_total


def content_hash(f: h5py.File, rows: int = 256) -> str:
    """SHA-256 of every patch of a dataset file (inputs, masks and the per-patch arrays, in
    order, streamed ``rows`` at a time); the assemble step stores it as ``content_sha256``."""
    h = hashlib.sha256()
    for key in ("inputs", "masks", *PER_PATCH):
        if key not in f:
            continue
        d = f[key]
        h.update(f"{key}{d.shape}{d.dtype.str}".encode())
        for i in range(0, d.shape[0], rows):
            h.update(np.ascontiguousarray(d[i : i + rows]).tobytes())
    return h.hexdigest()


def run_bands(runs: dict, run: str, available) -> list[str]:
    """The input bands of U-Net run ``run`` (``clusters.train.runs.<run>.bands``; null: every
    band of ``available``, the dataset's bands), in the config's order. The one place that
    decides a run's bands, at training and at prediction time."""
    available = [str(b) for b in available]
    if run not in runs:
        raise DatasetError(f"'clusters.train.runs' has no run {run!r} (runs: {', '.join(runs)})")
    bands = (runs[run] or {}).get("bands")
    if bands is None:
        return available
    bands = [str(b) for b in bands]
    absent = [b for b in bands if b not in available]
    if absent:
        raise DatasetError(
            f"'clusters.train.runs.{run}.bands' asks for {absent}, not in the datasets' bands "
            f"{available} ('planck.bands')"
        )
    return bands


def select_bands(src, dst, bands) -> int:
    """Copy dataset ``src`` keeping only ``bands`` (in that order) to ``dst``; returns N."""
    bands = [str(b) for b in bands]
    with h5py.File(src, "r") as f:
        have = [b.decode() if isinstance(b, bytes) else str(b) for b in f.attrs["bands"]]
        absent = [b for b in bands if b not in have]
        if absent:
            raise DatasetError(f"{src}: has bands {have}, not {absent}")
        idx = [have.index(b) for b in bands]
        with atomic_path(dst) as tmp, h5py.File(tmp, "w") as out:
            x = f["inputs"]
            n, s = x.shape[0], x.shape[1]
            chunk = x.chunks[0] if x.chunks else 64
            d = out.create_dataset("inputs", (n, s, s, len(idx)), np.float32,
                                   chunks=(min(chunk, max(n, 1)), s, s, len(idx)))  # fmt: skip
            for i in range(0, n, 256):
                d[i : i + 256] = x[i : i + 256][..., idx]
            for key in f:
                if key != "inputs":
                    f.copy(f[key], out, name=key)
            out.attrs.update(dict(f.attrs))
            out.attrs["bands"] = bands
            out.attrs["content_sha256"] = content_hash(out)
    return n
