"""HEALPix nside-2 tiles (RING, 0-based), tile files with a margin, and patch sampling.

A tile is one of the 48 pixels of a HEALPix nside-2 map in RING ordering (as in the reference
pipeline: ``tile = ang2pix(2, l, b, lonlat=True)``). A *tile file* holds, for every band, the
map values of all map pixels (RING, at the map nside) inside the tile or within
``margin_deg`` of it, so that every patch touching the tile can be cut from the tile alone.

Tile file (HDF5) layout: ``pixels`` int64 (P,) sorted RING pixel indices; ``in_tile`` bool
(P,) whether the pixel's centre lies in the tile itself; ``maps/<band>`` float32 (P,); attrs
``nside``, ``tile``, ``margin_deg``, ``bands``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import h5py
import healpy as hp
import numpy as np
from tqdm import tqdm

from skydetect.geometry import projection
from skydetect.io.atomic import atomic_path
from skydetect.io.content import digest, identical_pairs

__all__ = [
    "TILE_NSIDE",
    "N_TILES",
    "tile_of",
    "tile_of_pixels",
    "tile_pixels",
    "tile_margin_pixels",
    "cluster_margin_deg",
    "mmf_margin_deg",
    "patch_reach_deg",
    "Tile",
    "TileError",
    "read_tile",
    "write_tile",
    "patch_tiles",
]

TILE_NSIDE = 2
N_TILES = hp.nside2npix(TILE_NSIDE)  # 48

_COARSE_NSIDE = 64  # resolution at which the margin is built (then refined hierarchically)


class TileError(ValueError):
    """Bad tile file, tile index, band, or a patch that falls outside its tile's margin."""


def tile_of(glon, glat):
    """nside-2 RING tile index (0..47) of Galactic (l, b) in degrees."""
    return hp.ang2pix(TILE_NSIDE, np.asarray(glon, float), np.asarray(glat, float), lonlat=True)


def tile_of_pixels(nside: int, pixels) -> np.ndarray:
    """Tile index of RING pixels at ``nside`` (exact, by the nested hierarchy)."""
    nest = hp.ring2nest(nside, np.asarray(pixels, dtype=np.int64))
    return hp.nest2ring(TILE_NSIDE, nest // (nside // TILE_NSIDE) ** 2)


def _check_tile(tile: int) -> int:
    tile = int(tile)
    if not 0 <= tile < N_TILES:
        raise TileError(f"tile index {tile} outside 0..{N_TILES - 1} (HEALPix nside 2, RING)")
    return tile


def _nest_children(nside_coarse: int, nside: int, coarse_nest) -> np.ndarray:
    f2 = (nside // nside_coarse) ** 2
    coarse_nest = np.asarray(coarse_nest, dtype=np.int64)
    return (coarse_nest[:, None] * f2 + np.arange(f2, dtype=np.int64)[None, :]).ravel()


def tile_pixels(nside: int, tile: int) -> np.ndarray:
    """Sorted RING pixels at ``nside`` whose centres lie in ``tile``."""
    tile = _check_tile(tile)
    parent = hp.ring2nest(TILE_NSIDE, tile)
    return np.sort(hp.nest2ring(nside, _nest_children(TILE_NSIDE, nside, [parent])))


def tile_margin_pixels(nside: int, tile: int, margin_deg: float) -> np.ndarray:
    """Sorted RING pixels at ``nside`` of the tile plus every pixel that contains a point
    within ``margin_deg`` of the tile (a superset: built from inclusive disc queries around
    a dense sampling of the tile boundary at a coarse resolution)."""
    tile = _check_tile(tile)
    if nside < TILE_NSIDE or nside & (nside - 1):
        raise TileError(f"nside {nside} is not a power of two >= {TILE_NSIDE}")
    nc = min(_COARSE_NSIDE, nside)
    parent = hp.ring2nest(TILE_NSIDE, tile)
    coarse = set(_nest_children(TILE_NSIDE, nc, [parent]).tolist())
    if margin_deg > 0:
        # boundary samples spaced at most a quarter of a coarse pixel apart
        step = int(np.ceil(4 * nc / TILE_NSIDE)) * 2
        bnd = hp.boundaries(TILE_NSIDE, tile, step=step, nest=False)  # (3, 4*step)
        v = bnd.T
        spacing = np.max(np.arccos(np.clip(np.sum(v * np.roll(v, -1, axis=0), axis=1), -1, 1)))
        radius = np.radians(margin_deg) + spacing / 2
        for vec in v:
            coarse.update(hp.query_disc(nc, vec, radius, inclusive=True, nest=True).tolist())
    coarse_arr = np.fromiter(coarse, dtype=np.int64)
    fine_nest = _nest_children(nc, nside, coarse_arr)
    return np.sort(hp.nest2ring(nside, fine_nest))


def patch_reach_deg(size: int, pixel_arcmin: float, centre_offset_deg: float, nside: int) -> float:
    """How far (deg) outside a tile the pixels of a ``size`` x ``size`` patch reach when its
    centre lies within ``centre_offset_deg`` of the tile (plus the neighbours that bilinear
    interpolation needs): the tile margin such patches need."""
    half_diag = np.sqrt(2.0) * (size / 2.0 + 1.0) * pixel_arcmin / 60.0
    return float(half_diag + centre_offset_deg + 2.0 * np.degrees(hp.max_pixrad(nside)))


def cluster_margin_deg(size: int, pixel_arcmin: float, max_shift_px: float, nside: int) -> float:
    """Tile margin (deg) for the U-Net's patches: training patches whose centre is up to
    ``max_shift_px`` pixels (on each axis) from a cluster of the tile, and cover patches whose
    centre is within half a patch of the tile."""
    pix = pixel_arcmin / 60.0
    shift = max(np.sqrt(2.0) * max_shift_px * pix, size / 2.0 * pix)
    return patch_reach_deg(size, pixel_arcmin, shift, nside)


def mmf_margin_deg(patch_size: int, pixel_arcmin: float, nside: int) -> float:
    """Tile margin (deg) for the MMF's flat patches, whose centres lie inside the tile."""
    return patch_reach_deg(patch_size, pixel_arcmin, 0.0, nside)


def patch_tiles(glon, glat, size: int, pixel_arcmin: float, angle=0.0, flip=False) -> list:
    """For each patch, the set (sorted array) of tiles that its pixel centres fall in."""
    lon, lat = projection.patch_lonlat(glon, glat, size, pixel_arcmin, angle, flip)
    t = tile_of(lon, lat)
    if t.ndim == 2:
        return [np.unique(t)]
    return [np.unique(ti) for ti in t.reshape(t.shape[0], -1)]


@dataclass
class Tile:
    """The map values of one tile and its margin, for all bands."""

    tile: int
    nside: int
    margin_deg: float
    pixels: np.ndarray  # (P,) sorted RING pixel indices
    in_tile: np.ndarray  # (P,) bool
    maps: dict[str, np.ndarray]  # band -> (P,) float32
    path: str = ""
    _stack: dict = field(default_factory=dict, repr=False)

    @property
    def bands(self) -> list[str]:
        return list(self.maps)

    def _data(self, bands) -> np.ndarray:
        bands = tuple(str(b) for b in bands)
        missing = [b for b in bands if b not in self.maps]
        if missing:
            raise TileError(
                f"band(s) {missing} absent from tile file {self.path or self.tile} "
                f"(it has {self.bands})"
            )
        if bands not in self._stack:
            self._stack[bands] = np.stack([self.maps[b] for b in bands], axis=-1)  # (P, B)
        return self._stack[bands]

    def _lut(self) -> np.ndarray:
        """Dense table RING pixel - pixels[0] -> index (int32, -1 outside): O(1) lookups."""
        if "lut" not in self._stack:
            lut = np.full(int(self.pixels[-1] - self.pixels[0]) + 1, -1, dtype=np.int32)
            lut[self.pixels - self.pixels[0]] = np.arange(len(self.pixels), dtype=np.int32)
            self._stack["lut"] = lut
        return self._stack["lut"]

    def lookup(self, pixels) -> np.ndarray:
        """Index into ``self.pixels`` of RING ``pixels``; error if any lies outside."""
        pixels = np.asarray(pixels, dtype=np.int64)
        lut = self._lut()
        rel = pixels - self.pixels[0]
        inside = (rel >= 0) & (rel < len(lut))
        idx = lut[np.where(inside, rel, 0)]
        bad = ~inside | (idx < 0)
        if bad.any():
            lon, lat = hp.pix2ang(self.nside, pixels[bad][:1], lonlat=True)
            raise TileError(
                f"{int(bad.sum())} requested pixel(s) lie outside tile {self.tile} + margin "
                f"{self.margin_deg:.3f} deg ({self.path}); first at l={lon[0]:.3f}, "
                f"b={lat[0]:.3f}: widen the margin (clusters.patch.max_shift / size)"
            )
        return idx

    def sample_vectors(self, vec, bands, sampling: str = "nearest", out=None) -> np.ndarray:
        """Map values (..., B) float32 at unit vectors ``vec`` (..., 3) (into ``out``)."""
        data = self._data(bands)
        shape = vec.shape[:-1]
        v = vec.reshape(-1, 3)
        if out is None:
            out = np.empty((*shape, data.shape[1]), dtype=np.float32)
        if sampling == "nearest":
            pix = hp.vec2pix(self.nside, v[:, 0], v[:, 1], v[:, 2])
            np.take(data, self.lookup(pix), axis=0, out=out.reshape(-1, data.shape[1]))
            return out
        elif sampling == "bilinear":
            theta, phi = hp.vec2ang(v)
            pix, wgt = hp.get_interp_weights(self.nside, theta, phi)  # (4, M)
            idx = self.lookup(pix.ravel()).reshape(pix.shape)
            res = np.einsum("km,kmb->mb", wgt.astype(np.float32), data[idx])
            out[...] = res.reshape(out.shape)
            return out
        raise TileError(f"unknown sampling {sampling!r} (clusters.patch.sampling)")

    def cut_patches(
        self,
        glon,
        glat,
        bands,
        size: int,
        pixel_arcmin: float,
        angle=0.0,
        flip=False,
        sampling: str = "nearest",
        chunk: int = 256,
    ) -> np.ndarray:
        """Patches (N, S, S, B) float32 centred on (glon, glat), all cut at once (in chunks)."""
        glon, glat, angle, flip = (
            np.atleast_1d(a) for a in np.broadcast_arrays(glon, glat, angle, flip)
        )
        n = len(glon)
        out = np.empty((n, size, size, len(bands)), dtype=np.float32)
        for s in range(0, n, chunk):
            sl = slice(s, s + chunk)
            vec = projection.patch_vectors(
                glon[sl], glat[sl], size, pixel_arcmin, angle[sl], flip[sl]
            )
            self.sample_vectors(vec, bands, sampling, out=out[sl])
        return out


def write_tile(path, tile: int, nside: int, margin_deg: float, pixels, in_tile, maps) -> None:
    """Write a tile file atomically (temporary name in the same directory, then rename)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["tile"] = int(tile)
        f.attrs["nside"] = int(nside)
        f.attrs["margin_deg"] = float(margin_deg)
        f.attrs["bands"] = [str(b) for b in maps]
        f.create_dataset("pixels", data=np.asarray(pixels, dtype=np.int64))
        f.create_dataset("in_tile", data=np.asarray(in_tile, dtype=bool))
        g = f.create_group("maps")
        for band, values in maps.items():
            g.create_dataset(str(band), data=np.asarray(values, dtype=np.float32))


def read_tile(path, bands=None) -> Tile:
    """Read a tile file (optionally only some ``bands``), checking its contents."""
    path = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TileError(f"cannot read tile file {path}: {exc}") from exc
    with f:
        for key in ("pixels", "in_tile", "maps"):
            if key not in f:
                raise TileError(f"tile file {path} has no '{key}' dataset")
        for key in ("tile", "nside", "margin_deg"):
            if key not in f.attrs:
                raise TileError(f"tile file {path} has no '{key}' attribute")
        pixels = f["pixels"][...]
        if pixels.size == 0:
            raise TileError(f"tile file {path} is empty (no pixels)")
        have = list(f["maps"].keys())
        want = have if bands is None else [str(b) for b in bands]
        missing = [b for b in want if b not in have]
        if missing:
            raise TileError(f"band(s) {missing} absent from tile file {path} (it has {have})")
        maps = {b: f["maps"][b][...] for b in want}
        in_tile = f["in_tile"][...]
        for b, m in maps.items():
            if m.shape != pixels.shape:
                raise TileError(
                    f"tile file {path}: band {b} has {m.shape} values, not {pixels.shape}"
                )
            if not np.isfinite(m[in_tile]).any():
                raise TileError(
                    f"tile file {path}: band {b} has no valid (finite, not UNSEEN) value in "
                    f"tile {int(f.attrs['tile'])}"
                )
        return Tile(
            tile=int(f.attrs["tile"]),
            nside=int(f.attrs["nside"]),
            margin_deg=float(f.attrs["margin_deg"]),
            pixels=pixels,
            in_tile=in_tile,
            maps=maps,
            path=path,
        )


def split_maps(map_paths: dict, out_paths: dict, margin_deg: float, progress: bool = False):
    """Cut full-sky checked maps (band -> FITS path, RING) into tile files (tile -> path).

    Each map is read once; memory holds one full-sky map and one tile at a time. UNSEEN
    values become NaN. All outputs are written under temporary names and renamed only when
    every band is done (no half-written tile files).
    """
    if not map_paths:
        raise TileError("no bands given to split into tiles")
    tile_ids = [_check_tile(t) for t in out_paths]
    nside = None
    digests: dict[str, str] = {}
    with contextlib.ExitStack() as stack:  # every tile moved into place only if all succeed
        tmp = {t: stack.enter_context(atomic_path(out_paths[t])) for t in tile_ids}
        for band, mpath in map_paths.items():
            try:
                m = hp.read_map(str(mpath), dtype=np.float32)
            except Exception as exc:
                raise TileError(f"cannot read checked map of band {band}: {mpath}: {exc}") from exc
            this = hp.get_nside(m)
            if nside is None:
                nside = this
                for t in tile_ids:
                    pix = tile_margin_pixels(nside, t, margin_deg)
                    with h5py.File(tmp[t], "w") as f:
                        f.attrs["tile"] = t
                        f.attrs["nside"] = nside
                        f.attrs["margin_deg"] = float(margin_deg)
                        f.attrs["bands"] = [str(b) for b in map_paths]
                        f.create_dataset("pixels", data=pix)
                        f.create_dataset("in_tile", data=tile_of_pixels(nside, pix) == t)
                        f.create_group("maps")
            elif this != nside:
                raise TileError(f"map of band {band} ({mpath}) has nside {this}, others {nside}")
            digests[band] = digest(m)
            for first, same in identical_pairs(digests):
                raise TileError(
                    f"the checked maps of bands {first} ({map_paths[first]}) and {same} "
                    f"({mpath}) hold the same values: two bands cannot be one map (the same "
                    "file given twice in the configuration?)"
                )
            m[~np.isfinite(m) | (m == hp.UNSEEN)] = np.nan
            for t in tqdm(tile_ids, desc=f"band {band}", disable=not progress):
                with h5py.File(tmp[t], "a") as f:
                    f["maps"].create_dataset(str(band), data=m[f["pixels"][...]])
            del m
