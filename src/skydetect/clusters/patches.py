"""Cut the training, validation and cover patches of one tile (all patches at once).

- Training / validation: ``loops`` copies of a patch around every catalogue cluster of the
  tile, each centre shifted in the tangent plane of the cluster by independent uniform
  offsets on both axes (up to ``max_shift_px`` pixels), with a random rotation and flip;
  plus ``background_per_tile`` patches at random positions of the tile (the sky the
  detector must learn to leave empty: the Galactic plane, dust, CO).
  Guard band: a patch is kept only if *all* its pixel centres fall in tiles of its split.
- Cover: a complete grid over the tile (:mod:`skydetect.clusters.cover`). Sparse (default,
  ``cover_margin`` pixels): rotated patches whose central squares, ``cover_margin`` pixels
  from the edges, tile the tile (< 2x redundancy at 64 px and a 6 px margin). Dense
  (``cover_margin: null``): unrotated patches on a HEALPix grid fine enough that every point
  of the tile lies within ``(1 - cover_overlap)`` x the inscribed radius of a patch.

Every catalogue cluster overlapping a patch is drawn into its mask (:mod:`.masks`).
Patch files: :mod:`.patch_files`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import healpy as hp
import numpy as np
from tqdm import tqdm

from skydetect.clusters import cover as coverlib
from skydetect.clusters import masks as masklib
from skydetect.geometry import projection, tiles
from skydetect.schema import schema_defaults

__all__ = [
    "PatchConfig",
    "PatchSet",
    "training_centres",
    "background_centres",
    "cover_centres",
    "cover_grid",
    "training_chunks",
    "cover_chunks",
    "collect",
    "cut_training",
    "cut_cover",
    "STAGE",
    "PATCH_ARRAYS",
]

STAGE = 3  # seed component of this stage
SPLIT_CODES = {"train": 0, "validation": 1, "cover": 2}
_PATCH, _MASK = schema_defaults("clusters.patch"), schema_defaults("clusters.mask")
PATCH_ARRAYS = ("inputs", "masks", "glon", "glat", "angle", "flip", "tile", "cluster_ids")


@dataclass
class PatchConfig:
    """Patch cutting (``clusters.patch``) and training masks (``clusters.mask``); the defaults
    are the schema's."""

    bands: list
    size: int = _PATCH["size"]
    pixel_arcmin: float = _PATCH["pixel_arcmin"]
    sampling: str = _PATCH["sampling"]
    loops: int = _PATCH["loops"]
    max_shift_px: float = _PATCH["max_shift"]
    rotate: bool = _PATCH["rotate"]
    flip: bool = _PATCH["flip"]
    cover_overlap: float = _PATCH["cover_overlap"]
    cover_margin: int | None = _PATCH["cover_margin"]
    max_clusters_per_tile: int | None = _PATCH["max_clusters_per_tile"]
    background_per_tile: int = _PATCH["background_per_tile"]
    disk_radius: float | None = _MASK["disk_radius"]
    theta500: bool = _MASK["theta500"]
    theta500_scale: float = _MASK["theta500_scale"]
    random_max_arcmin: float = _MASK["random_max_arcmin"]
    max_ids: int = _MASK["max_ids"]
    chunk: int = 128

    @classmethod
    def from_config(cls, bands, patch: dict, mask: dict) -> PatchConfig:
        return cls(
            bands=[str(b) for b in bands],
            size=int(patch["size"]),
            pixel_arcmin=float(patch["pixel_arcmin"]),
            sampling=patch["sampling"],
            loops=int(patch["loops"]),
            max_shift_px=float(patch["max_shift"]),
            rotate=bool(patch["rotate"]),
            flip=bool(patch["flip"]),
            cover_overlap=float(patch["cover_overlap"]),
            cover_margin=None if patch["cover_margin"] is None else int(patch["cover_margin"]),
            max_clusters_per_tile=patch["max_clusters_per_tile"],
            background_per_tile=int(patch["background_per_tile"]),
            disk_radius=mask["disk_radius"],
            theta500=bool(mask["theta500"]),
            theta500_scale=float(mask["theta500_scale"]),
            random_max_arcmin=float(mask["random_max_arcmin"]),
            max_ids=int(mask["max_ids"]),
        )


@dataclass
class PatchSet:
    inputs: np.ndarray  # (N, S, S, B) float32
    masks: np.ndarray  # (N, S, S) uint8
    glon: np.ndarray
    glat: np.ndarray
    angle: np.ndarray
    flip: np.ndarray
    tile: np.ndarray
    cluster_ids: np.ndarray  # (N, K) int64, -1 padded
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.glon)


def training_centres(
    cl_glon, cl_glat, loops, max_shift_px, pixel_arcmin, rng, rotate=True, flip=True
):
    """(glon, glat, angle, flip, source) of ``loops`` augmented copies per cluster."""
    n0 = len(cl_glon)
    src = np.tile(np.arange(n0), loops)
    n = src.size
    shift = rng.uniform(-max_shift_px, max_shift_px, (2, n)) * pixel_arcmin / 60.0
    glon, glat = projection.offset_lonlat(
        np.asarray(cl_glon, float)[src], np.asarray(cl_glat, float)[src], shift[0], shift[1]
    )
    angle = rng.uniform(0.0, 360.0, n) if rotate else np.zeros(n)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    return np.atleast_1d(glon), np.atleast_1d(glat), angle.astype(np.float32), flips, src


def background_centres(tile: tiles.Tile, n: int, rng, rotate=True, flip=True):
    """(glon, glat, angle, flip) of ``n`` patches centred on random positions of ``tile``
    (uniform in area: random map pixels of the tile). Their masks hold whatever catalogue
    clusters fall in them; most hold none, so the network sees the foreground-rich sky
    (the Galactic plane, dust clouds, CO) without a cluster at the centre."""
    tpix = tile.pixels[tile.in_tile]
    pick = rng.choice(tpix, size=n, replace=n > tpix.size) if n else tpix[:0]
    theta, phi = hp.pix2ang(tile.nside, pick)
    glon, glat = np.degrees(phi), 90.0 - np.degrees(theta)
    angle = rng.uniform(0.0, 360.0, n) if rotate else np.zeros(n)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    return glon, glat, angle.astype(np.float32), flips


def cover_nside(size, pixel_arcmin, overlap) -> int:
    """Smallest (RING, any integer) nside whose pixels are all within the covering radius
    (the dense cover grid)."""
    return coverlib.dense_cover_nside(size, pixel_arcmin, overlap)


def cover_centres(nside, tile_pixels, size, pixel_arcmin, overlap):
    """Centres (glon, glat) of dense cover patches for the given RING pixels (at ``nside``)."""
    return coverlib.dense_cover_centres(nside, tile_pixels, size, pixel_arcmin, overlap)


def cover_grid(tile: tiles.Tile, cfg: PatchConfig):
    """(glon, glat, angle, flip) of the cover patches of ``tile``: the sparse grid when
    ``cfg.cover_margin`` is set, else the dense grid (angle 0)."""
    tpix = tile.pixels[tile.in_tile]
    if cfg.cover_margin is None:
        glon, glat = cover_centres(tile.nside, tpix, cfg.size, cfg.pixel_arcmin, cfg.cover_overlap)
        angle = np.zeros(len(glon), np.float32)
    else:
        glon, glat, angle = coverlib.sparse_cover_centres(
            tile.nside, tpix, cfg.size, cfg.pixel_arcmin, cfg.cover_margin, tile.tile
        )
    return glon, glat, angle, np.zeros(len(glon), bool)


def cover_index(tile: tiles.Tile, cfg: PatchConfig, nside: int) -> coverlib.CombineIndex:
    """The combination index of the cover of ``tile`` on a map at ``nside``."""
    glon, glat, angle, flip = cover_grid(tile, cfg)
    margin = 0 if cfg.cover_margin is None else cfg.cover_margin
    return coverlib.build_index(
        glon, glat, angle, flip, cfg.size, cfg.pixel_arcmin, nside, tile.tile, margin
    )


def _empty(cfg: PatchConfig) -> PatchSet:
    s, b = cfg.size, len(cfg.bands)
    return PatchSet(
        np.zeros((0, s, s, b), np.float32),
        np.zeros((0, s, s), np.uint8),
        np.zeros(0),
        np.zeros(0),
        np.zeros(0, np.float32),
        np.zeros(0, bool),
        np.zeros(0, np.int16),
        np.full((0, cfg.max_ids), -1, np.int64),
    )


def _cut_iter(
    tile: tiles.Tile,
    glon,
    glat,
    angle,
    flip,
    cfg: PatchConfig,
    catalog,
    rng,
    allowed_tiles=None,
    drop_nan=True,
    progress=False,
):
    """Cut patches in chunks of ``cfg.chunk`` (yielded as PatchSets); keep those whose pixels
    all lie in ``allowed_tiles`` (None: all) and, with ``drop_nan``, are free of NaN."""
    cl_glon = np.asarray(catalog["GLON"], float)
    cl_glat = np.asarray(catalog["GLAT"], float)
    theta = np.asarray(catalog["THETA500"], float) if "THETA500" in catalog.colnames else None

    def radii_fn(idx):
        return masklib.mask_radii(
            len(idx),
            None if theta is None else theta[idx],
            disk_radius=cfg.disk_radius,
            theta500_mode=cfg.theta500,
            theta500_scale=cfg.theta500_scale,
            random_max_arcmin=cfg.random_max_arcmin,
            pixel_arcmin=cfg.pixel_arcmin,
            rng=rng,
        )

    allowed = None if allowed_tiles is None else np.asarray(sorted(allowed_tiles))
    n = len(glon)
    for s in tqdm(range(0, n, cfg.chunk), desc=f"tile {tile.tile}", disable=not progress):
        sl = slice(s, s + cfg.chunk)
        g, b, a, f = glon[sl], glat[sl], angle[sl], flip[sl]
        vec = projection.patch_vectors(g, b, cfg.size, cfg.pixel_arcmin, a, f)
        keep = np.ones(len(g), bool)
        if allowed is not None:
            v = vec.reshape(-1, 3)
            pt = hp.vec2pix(tiles.TILE_NSIDE, v[:, 0], v[:, 1], v[:, 2]).reshape(len(g), -1)
            keep = np.isin(pt, allowed).all(axis=1)
        if not keep.any():
            continue
        vec, g, b, a, f = vec[keep], g[keep], b[keep], a[keep], f[keep]
        x = tile.sample_vectors(vec, cfg.bands, cfg.sampling)
        if drop_nan:
            good = np.isfinite(x).all(axis=(1, 2, 3))
            vec, x, g, b, a, f = vec[good], x[good], g[good], b[good], a[good], f[good]
        m, ids = masklib.draw_masks(
            vec, g, b, a, f, cfg.size, cfg.pixel_arcmin, cl_glon, cl_glat, radii_fn, cfg.max_ids
        )
        yield PatchSet(
            x,
            m,
            g,
            b,
            a.astype(np.float32),
            f.astype(bool),
            np.full(len(g), tile.tile, np.int16),
            ids,
        )


def collect(chunks, cfg: PatchConfig, attrs=None) -> PatchSet:
    """One PatchSet from an iterable of chunks."""
    parts = list(chunks)
    if not parts:
        ps = _empty(cfg)
    else:
        ps = PatchSet(*(np.concatenate([getattr(p, k) for p in parts]) for k in PATCH_ARRAYS))
    ps.attrs.update(attrs or {})
    return ps


def training_chunks(
    tile: tiles.Tile, catalog, cfg: PatchConfig, split: str, split_tiles, seed: int, progress=False
):
    """(attrs, chunk iterator) of the augmented patches around the catalogue clusters of
    ``tile`` that lie entirely in ``split_tiles`` (the tiles of ``split``)."""
    if tile.tile not in set(split_tiles):
        raise ValueError(f"tile {tile.tile} is not a tile of split {split!r}")
    rng = np.random.default_rng([seed, STAGE, tile.tile, SPLIT_CODES[split]])
    cl_glon = np.asarray(catalog["GLON"], float)
    cl_glat = np.asarray(catalog["GLAT"], float)
    sel = np.flatnonzero(tiles.tile_of(cl_glon, cl_glat) == tile.tile)
    if cfg.max_clusters_per_tile is not None and len(sel) > cfg.max_clusters_per_tile:
        sel = np.sort(rng.choice(sel, cfg.max_clusters_per_tile, replace=False))
    glon, glat, angle, flip, _ = training_centres(
        cl_glon[sel],
        cl_glat[sel],
        cfg.loops,
        cfg.max_shift_px,
        cfg.pixel_arcmin,
        rng,
        cfg.rotate,
        cfg.flip,
    )
    n_bg = cfg.background_per_tile
    if n_bg:
        bg = background_centres(tile, n_bg, rng, cfg.rotate, cfg.flip)
        glon, glat, angle, flip = (
            np.concatenate([a, b]) for a, b in zip((glon, glat, angle, flip), bg, strict=True)
        )
    attrs = dict(
        split=split,
        tile=tile.tile,
        nside=tile.nside,
        n_clusters=len(sel),
        n_background=n_bg,
        n_candidates=len(glon),
    )
    return attrs, _cut_iter(
        tile, glon, glat, angle, flip, cfg, catalog, rng, split_tiles, True, progress
    )


def cover_chunks(tile: tiles.Tile, catalog, cfg: PatchConfig, seed: int, progress=False):
    """(attrs, chunk iterator) of the complete grid of patches over ``tile`` (no flip; see
    :func:`cover_grid`), every patch kept, in grid order."""
    rng = np.random.default_rng([seed, STAGE, tile.tile, SPLIT_CODES["cover"]])
    glon, glat, angle, flip = cover_grid(tile, cfg)
    n = len(glon)
    attrs = dict(
        split="cover",
        tile=tile.tile,
        nside=tile.nside,
        n_candidates=n,
        cover_margin=-1 if cfg.cover_margin is None else int(cfg.cover_margin),
        cover_redundancy=coverlib.cover_redundancy(
            n, cfg.size, cfg.pixel_arcmin, tile.nside, tile.tile
        ),
    )
    return attrs, _cut_iter(
        tile,
        glon,
        glat,
        angle,
        flip,
        cfg,
        catalog,
        rng,
        None,
        False,
        progress,
    )


def cut_training(tile, catalog, cfg, split, split_tiles, seed, progress=False) -> PatchSet:
    """All training / validation patches of a tile in memory (see :func:`training_chunks`)."""
    attrs, chunks = training_chunks(tile, catalog, cfg, split, split_tiles, seed, progress)
    return collect(chunks, cfg, attrs)


def cut_cover(tile, catalog, cfg, seed, progress=False) -> PatchSet:
    """All cover patches of a tile in memory (see :func:`cover_chunks`)."""
    attrs, chunks = cover_chunks(tile, catalog, cfg, seed, progress)
    return collect(chunks, cfg, attrs)
