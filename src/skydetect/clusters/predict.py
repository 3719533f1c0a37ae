"""Per-tile inference: U-Net probabilities of the cover patches, combined on the sphere.

The patches are predicted through a compiled step at a fixed batch shape and the configured
precision (:mod:`skydetect.clusters.inference`). Each patch keeps its prediction in its
central square (``clusters.patch.cover_margin`` pixels from the edges, where the network saw
the whole neighbourhood; all of it for the dense cover) and the probability of a HEALPix
pixel is the area-weighted mean of the kept patch pixels over it, through the combination
index of :mod:`skydetect.clusters.cover` (stored in the cover file by ``cut_cover``, rebuilt
here only if the cover file has none for this map's nside): one ``bincount`` per tile.
:func:`combine_on_sphere` (one sample per patch pixel, for patches given by their pixels)
remains for callers that have no cover. The grid is that of the patch pixels by default (nside 2048 for 1.7' pixels,
``clusters.detect.nside: null``), whatever the map nside: on a coarser grid (nside 1024:
3.4' pixels) a 2.5'-radius predicted disc covers two pixels and fails the 3-pixel rule. A cluster seen by several overlapping patches
is therefore one blob of one map, hence one detection.

The map keeps every pixel that some patch saw: the tile's own pixels (``in_tile``) and the
margin around it that the cover patches reach. Detection keeps a region only if its centre
lies in the tile (:func:`skydetect.clusters.detect.find_detections`), so a cluster on a tile
border is found once over the sky, by the tile that holds its centre.

Prediction file (HDF5, ``results/predictions/{run}/{tile}.h5``): ``pixels`` int64 (M,) sorted
RING indices; ``prob`` float32 (M,) mean probability; ``count`` int32 (M,) number of patch
pixels averaged; ``in_tile`` bool (M,); attrs ``nside`` (of this map), ``map_nside`` (of the
input maps), ``tile``, ``run``, ``n_patches``, ``size``, ``pixel_arcmin``, ``bands``,
``precision``, ``cover_margin``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import h5py
import healpy as hp
import numpy as np
from tqdm import tqdm

from skydetect.clusters import cover as coverlib
from skydetect.clusters import normalise
from skydetect.clusters.inference import CompiledPredictor
from skydetect.geometry import projection, tiles
from skydetect.io.atomic import atomic_path

log = logging.getLogger(__name__)

PATCH_KEYS = ("inputs", "glon", "glat", "angle", "flip")


@dataclass
class ProbabilityMap:
    """Mean patch probability on the HEALPix pixels seen by the cover patches of a tile."""

    pixels: np.ndarray
    prob: np.ndarray
    count: np.ndarray
    in_tile: np.ndarray
    nside: int
    tile: int
    attrs: dict


def predict_patches(
    model, inputs, batch_size: int = 64, progress: bool = False, streams: int = 1
) -> np.ndarray:
    """Probabilities (N, S, S) float32 of ``model`` (a Keras model: through a compiled step,
    :class:`~skydetect.clusters.inference.CompiledPredictor`, ``streams`` batches in flight;
    or any callable mapping a batch (n, S, S, B) to (n, S, S[, 1])) over ``inputs``
    (N, S, S, B), in batches."""
    if hasattr(model, "predict_on_batch") and len(inputs):
        return CompiledPredictor(model, batch_size, streams=streams)(inputs, progress)
    n = len(inputs)
    out = None
    call = model.predict_on_batch if hasattr(model, "predict_on_batch") else model
    for start in tqdm(range(0, n, batch_size), desc="patches", unit="batch", disable=not progress):
        batch = np.asarray(inputs[start : start + batch_size], dtype=np.float32)
        p = np.asarray(call(batch), dtype=np.float32)
        if p.ndim == 4:
            p = p[..., 0]
        if out is None:
            out = np.empty((n, *p.shape[1:]), dtype=np.float32)
        out[start : start + len(batch)] = p
    if out is None:
        return np.empty((0, 0, 0), dtype=np.float32)
    return out


def prediction_nside(pixel_arcmin: float, nside: int | None = None) -> int:
    """HEALPix nside of the probability map: ``nside`` if given, else the power of two whose
    pixel size is closest to the patch pixel (2048 for 1.7'), so that the map keeps the
    network's own resolution and "3 adjacent pixels" means what it does in a patch."""
    if nside is not None:
        nside = int(nside)
        if nside < 2 or nside & (nside - 1):
            raise ValueError(f"clusters.detect.nside must be a power of two >= 2, got {nside}")
        return nside
    if pixel_arcmin <= 0:
        raise ValueError(f"patch pixel_arcmin must be > 0, got {pixel_arcmin}")
    resol_1 = hp.nside2resol(1, arcmin=True)
    return int(2 ** max(1, round(np.log2(resol_1 / pixel_arcmin))))


def patch_pixels(glon, glat, angle, flip, size: int, pixel_arcmin: float, nside: int):
    """RING pixel (N, S, S) at ``nside`` sampled by every pixel of the patches."""
    vec = projection.patch_vectors(glon, glat, size, pixel_arcmin, angle, flip)
    return hp.vec2pix(nside, vec[..., 0], vec[..., 1], vec[..., 2]).astype(np.int64)


def combine_on_sphere(prob, pixels, nside: int, tile: int) -> ProbabilityMap:
    """Mean of the patch probabilities ``prob`` (N, S, S) per HEALPix pixel ``pixels``."""
    prob = np.asarray(prob, dtype=np.float64).ravel()
    pixels = np.asarray(pixels, dtype=np.int64).ravel()
    if prob.shape != pixels.shape:
        raise ValueError(f"prob {prob.shape} and pixels {pixels.shape} differ")
    ok = np.isfinite(prob)
    if not ok.all():
        log.warning("%d non-finite patch probabilities ignored", int((~ok).sum()))
    pixels, prob = pixels[ok], prob[ok]
    order = np.argsort(pixels)
    sp = pixels[order]
    starts = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]]) if sp.size else np.zeros(0, int)
    uniq = sp[starts]
    count = np.diff(np.r_[starts, sp.size])
    total = np.add.reduceat(prob[order], starts) if sp.size else np.zeros(0)
    return ProbabilityMap(
        pixels=uniq,
        prob=(total / np.maximum(count, 1)).astype(np.float32),
        count=count.astype(np.int32),
        in_tile=tiles.tile_of_pixels(nside, uniq) == tile if uniq.size else np.zeros(0, bool),
        nside=int(nside),
        tile=int(tile),
        attrs={},
    )


def sample_map(pmap: ProbabilityMap, glon, glat, angle, flip, size: int, pixel_arcmin: float):
    """The probability map seen through patches: (N, S, S) float32, NaN where the map has no
    value (for figures: what the detections were extracted from)."""
    pix = patch_pixels(glon, glat, angle, flip, size, pixel_arcmin, pmap.nside)
    pos = np.clip(np.searchsorted(pmap.pixels, pix), 0, max(pmap.pixels.size - 1, 0))
    out = np.full(pix.shape, np.nan, dtype=np.float32)
    if pmap.pixels.size:
        hit = pmap.pixels[pos] == pix
        out[hit] = pmap.prob[pos[hit]]
    return out


def read_cover(path, bands) -> tuple[dict, dict]:
    """Arrays and attributes of a cover patch file, inputs restricted to ``bands`` (in order)."""
    path = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"cannot read cover patch file {path}: {exc}") from exc
    with f:
        missing = [k for k in PATCH_KEYS if k not in f]
        if missing:
            raise ValueError(f"{path}: missing dataset(s) {', '.join(missing)}")
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        for key in ("bands", "size", "pixel_arcmin", "nside"):
            if key not in attrs:
                raise ValueError(f"{path}: missing attribute {key!r}")
        have = [str(b) for b in attrs["bands"]]
        absent = [b for b in bands if b not in have]
        if absent:
            raise ValueError(
                f"{path}: band(s) {absent} needed by the model are absent (has {have})"
            )
        idx = [have.index(b) for b in bands]
        data = {k: f[k][...] for k in PATCH_KEYS if k != "inputs"}
        data["inputs"] = f["inputs"][...][..., idx] if len(f["inputs"]) else f["inputs"][...]
        if "masks" in f:
            data["masks"] = f["masks"][...]
    if data["inputs"].ndim != 4 or data["inputs"].shape[1:3] != (attrs["size"],) * 2:
        raise ValueError(f"{path}: 'inputs' has shape {data['inputs'].shape}")
    if attrs.get("normalised"):
        raise ValueError(f"{path}: inputs are already normalised; cover patches must be raw")
    return data, attrs


def read_cover_index(path, nside: int, margin: int) -> coverlib.CombineIndex | None:
    """The combination index stored in a cover file, if it is for ``nside`` and ``margin``."""
    with h5py.File(str(path), "r") as f:
        index = coverlib.read_index(f, path)
    if index is None or index.nside != int(nside) or index.margin != int(margin):
        return None
    return index


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _cover_inputs(cover_path, bands, tile: int, signal):
    """The cover's patches of ``tile`` (raw inputs, ``signal`` added) and the file's attrs."""
    data, attrs = read_cover(cover_path, list(bands))
    if int(attrs.get("tile", tile)) != int(tile):
        raise ValueError(f"{cover_path}: holds tile {attrs['tile']}, not {tile}")
    if signal is not None:
        if np.shape(signal) != data["inputs"].shape:
            raise ValueError(
                f"{cover_path}: signal {np.shape(signal)} does not match the cover inputs "
                f"{data['inputs'].shape}"
            )
        data["inputs"] = data["inputs"] + np.asarray(signal, np.float32)
    if len(data["inputs"]) == 0:
        raise ValueError(f"{cover_path}: no cover patches for tile {tile}")
    return data, attrs


def _combined_map(cover_path, data, prob, nside: int, tile: int, size, pix_arcmin, margin):
    """The patch probabilities combined on the HEALPix pixels (at ``nside``) they saw."""
    index = read_cover_index(cover_path, nside, margin)
    if index is None:
        log.info("%s: no combination index at nside %d; building it", cover_path, nside)
        index = coverlib.build_index(
            data["glon"], data["glat"], data["angle"], data["flip"], size, pix_arcmin, nside,
            tile, margin,
        )  # fmt: skip
    mean, count = coverlib.combine(prob, index)
    seen = count > 0
    return ProbabilityMap(
        pixels=index.pixels[seen],
        prob=mean[seen],
        count=count[seen],
        in_tile=index.in_tile[seen],
        nside=int(nside),
        tile=int(tile),
        attrs={},
    )


def predict_tile(
    cover_path,
    model,
    bands,
    stats,
    tile: int,
    batch_size: int = 64,
    nside: int | None = None,
    progress: bool = False,
    precision: str = "float32",
    streams: int = 1,
    signal=None,
) -> ProbabilityMap:
    """Probability map of one tile from its cover patches (raw inputs, normalised here).

    The map is at ``prediction_nside(pixel_arcmin, nside)`` (by default the patch-pixel
    resolution, independent of the resolution of the input maps); ``precision`` is recorded
    (the model given is already built at it, see
    :func:`skydetect.clusters.inference.load_for_inference`); ``streams`` batches are in
    flight at a time (:func:`skydetect.clusters.inference.configure_threads`); ``signal``
    (N, S, S, B), in the order of ``bands``, is added to the raw inputs when given (injected
    clusters, :mod:`skydetect.clusters.inject`)."""
    data, attrs = _cover_inputs(cover_path, bands, tile, signal)
    n = len(data["inputs"])
    size, pix_arcmin = int(attrs["size"]), float(attrs["pixel_arcmin"])
    margin = max(0, int(attrs.get("cover_margin", -1)))  # -1: the dense cover, all kept
    nside = prediction_nside(pix_arcmin, nside)
    t0 = time.perf_counter()
    x = normalise.apply(data["inputs"], stats, list(bands))
    prob = predict_patches(model, x, batch_size, progress, streams)
    t1 = time.perf_counter()
    pmap = _combined_map(cover_path, data, prob, nside, tile, size, pix_arcmin, margin)
    t2 = time.perf_counter()
    missing = tiles.tile_pixels(pmap.nside, tile).size - int(pmap.in_tile.sum())
    if missing:
        log.warning("tile %d: %d of its pixels were seen by no cover patch", tile, missing)
    pmap.attrs = {
        "n_patches": n,
        "size": size,
        "pixel_arcmin": pix_arcmin,
        "bands": [str(b) for b in bands],
        "map_nside": int(attrs["nside"]),
        "precision": str(precision),
        "cover_margin": int(attrs.get("cover_margin", -1)),
    }
    log.info(
        "tile %d: %d patches (%.1f /s, %s) -> %d HEALPix pixels (%d in the tile, %d unseen) "
        "in %.2f s, max prob %.3f",
        tile,
        n,
        n / max(t1 - t0, 1e-9),
        precision,
        pmap.pixels.size,
        int(pmap.in_tile.sum()),
        missing,
        t2 - t1,
        float(pmap.prob.max()) if pmap.prob.size else float("nan"),
    )
    return pmap


def write_prediction(pmap: ProbabilityMap, path, run: str) -> None:
    """Write a prediction file atomically (see the module docstring for the layout)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("pixels", data=pmap.pixels.astype(np.int64), compression="gzip")
            f.create_dataset("prob", data=pmap.prob.astype(np.float32), compression="gzip")
            f.create_dataset("count", data=pmap.count.astype(np.int32), compression="gzip")
            f.create_dataset("in_tile", data=pmap.in_tile.astype(bool), compression="gzip")
            f.attrs["nside"] = pmap.nside
            f.attrs["tile"] = pmap.tile
            f.attrs["run"] = str(run)
            for k, v in pmap.attrs.items():
                f.attrs[k] = v


def read_prediction(path) -> ProbabilityMap:
    """Read a prediction file, checking its datasets."""
    path = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"cannot read prediction file {path}: {exc}") from exc
    with f:
        keys = ("pixels", "prob", "count", "in_tile")
        missing = [k for k in keys if k not in f]
        if missing:
            raise ValueError(f"{path}: missing dataset(s) {', '.join(missing)}")
        for key in ("nside", "tile"):
            if key not in f.attrs:
                raise ValueError(f"{path}: missing attribute {key!r}")
        arrays = {k: f[k][...] for k in keys}
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
    sizes = {k: a.shape for k, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{path}: datasets of different lengths {sizes}")
    return ProbabilityMap(
        nside=int(attrs.pop("nside")), tile=int(attrs.pop("tile")), attrs=attrs, **arrays
    )
