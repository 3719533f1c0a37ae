"""Cover grids of a tile and the patch-to-pixel index that combines predictions on the sphere.

Two grids (``clusters.patch.cover_margin``):

- **sparse** (an integer margin, in patch pixels): each patch keeps its prediction only in its
  central square, ``margin`` pixels from every edge, where the U-Net saw the whole
  neighbourhood of a pixel (its effective receptive field) and not the zero padding beyond the
  patch. (The default U-Net's receptive field spans more than a patch, but its effective
  one is narrow: for the untrained filters 16-128 network, 3.0 % of the gradient mass of an
  output pixel lies more than 6 px to one side of it, 1.9 % beyond 8 px, 0.5 % beyond 16 px;
  a pixel at the edge sees about half its view in the zero padding.) Patch centres are the pixel centres of a HEALPix (RING, any integer) grid
  ``nside_c``, each patch rotated to align with its own ``nside_c`` pixel (HEALPix pixels are
  diamonds; a patch at 45 degrees fits one), and ``nside_c`` is the coarsest for which every
  ``nside_c`` pixel lies inside the central square of its patch. Neighbouring patches then
  overlap by about the margin only: the cover costs ``(S / (S - 2 margin))^2`` times a
  non-overlapping tiling, plus what the shape of the HEALPix pixels costs (1.8-2x at 64 px
  and 8 px margin, :func:`cover_redundancy`).
- **dense** (``null``): the former grid of unrotated patches every point of which lies within
  ``(1 - cover_overlap)`` x the inscribed radius of a patch (~7x redundancy); every patch
  pixel is kept.

Combination (:func:`build_index`, :func:`combine`): every kept patch pixel is sampled at
``SUBSAMPLE`` x ``SUBSAMPLE`` points; each HEALPix pixel (at the prediction nside) gets the
mean of the patch pixels over the sample points that fall in it (an area-weighted
resampling: unlike one sample per patch pixel, it leaves no HEALPix pixel of the kept region
empty when patch and HEALPix pixels have about the same size). The index (HEALPix pixel,
patch pixel, weight) is built once per cover file (rule ``cut_cover`` stores it in the cover
file, group ``combine``), and the combination of a tile is then two ``np.bincount`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import healpy as hp
import numpy as np

from skydetect.geometry import projection, tiles

SUBSAMPLE = 3  # sample points per patch pixel and axis in the combination index
INDEX_GROUP = "combine"  # HDF5 group of the index in a cover file
_ANGLES = np.arange(0.0, 90.0, 1.0)  # candidate patch rotations (a square repeats every 90)


def central_mask(size: int, margin: int) -> np.ndarray:
    """(S, S) bool: the pixels at least ``margin`` pixels from every edge of a patch."""
    margin = int(margin)
    if not 0 <= 2 * margin < size:
        raise ValueError(
            f"clusters.patch.cover_margin {margin} leaves nothing of a {size}-pixel patch"
        )
    m = np.zeros((size, size), bool)
    m[margin : size - margin, margin : size - margin] = True
    return m


def _fit_squares(lon0, lat0, blon, blat, size: int, pixel_arcmin: float):
    """(best angle, half-width in pixels) of the smallest square (any rotation) centred on
    (lon0, lat0) (C,) that holds the boundary points (blon, blat) (C, P) of each cell."""
    c = (size - 1) / 2.0
    x, y = projection.lonlat_to_patch(
        np.asarray(blon)[:, None, :],
        np.asarray(blat)[:, None, :],
        np.asarray(lon0)[:, None, None],
        np.asarray(lat0)[:, None, None],
        size,
        pixel_arcmin,
        _ANGLES[None, :, None],
    )
    half = np.nanmax(np.maximum(np.abs(x - c), np.abs(y - c)), axis=-1)  # (C, A)
    best = np.argmin(half, axis=1)
    return _ANGLES[best], half[np.arange(len(best)), best]


def _frame(tile: int, psi_deg: float):
    """Gnomonic frame at the centre of ``tile``, axes rotated by ``psi_deg``: (e_r, e_p, e_q)."""
    lon, lat = hp.pix2ang(tiles.TILE_NSIDE, int(tile), lonlat=True)
    e_r, e_l, e_b = projection.tangent_basis(lon, lat)
    c, s = np.cos(np.radians(psi_deg)), np.sin(np.radians(psi_deg))
    return e_r, c * e_l + s * e_b, -s * e_l + c * e_b


def _equiangular_cells(vec, tile: int, psi: float, delta: float):
    """Cells (i, j) of an equiangular gnomonic grid of step ``delta`` (rad) that hold the
    unit vectors ``vec`` (M, 3), and the frame and origin of the grid."""
    e_r, e_p, e_q = _frame(tile, psi)
    d = vec @ e_r
    a = np.arctan2(vec @ e_p, d)
    b = np.arctan2(vec @ e_q, d)
    a0, b0 = a.min(), b.min()
    ij = np.unique(
        np.stack([np.floor((a - a0) / delta), np.floor((b - b0) / delta)], 1).astype(int), axis=0
    )
    return ij, (e_r, e_p, e_q), (a0, b0)


def _grid_lonlat(frame, alpha, beta):
    e_r, e_p, e_q = frame
    p, q = np.tan(alpha)[..., None], np.tan(beta)[..., None]
    v = e_r + p * e_p + q * e_q
    lon, lat = hp.vec2ang((v / np.linalg.norm(v, axis=-1, keepdims=True)).reshape(-1, 3), True)
    return lon.reshape(np.shape(alpha)), lat.reshape(np.shape(alpha))


def sparse_cover_centres(
    nside: int, tile_pixels, size: int, pixel_arcmin: float, margin: int, tile: int
):
    """(glon, glat, angle) of the sparse cover of ``tile`` (its RING pixels ``tile_pixels`` at
    ``nside``): the cells of an equiangular grid in the gnomonic plane at the tile centre
    (cells nearly square and of nearly equal size over a tile), with the grid's rotation that
    needs the fewest cells, a step as large as lets every cell fit, rotated, in the central
    square of its patch (half-width ``S/2 - margin`` less a quarter pixel)."""
    central_mask(size, margin)  # checks the margin
    half = size / 2.0 - margin - 0.25
    vec = np.stack(hp.pix2vec(nside, np.asarray(tile_pixels, dtype=np.int64)), axis=1)
    delta = 2 * half * np.radians(pixel_arcmin / 60.0)
    while True:
        best = None
        for psi in (0.0, 15.0, 30.0, 45.0, 60.0, 75.0):
            ij, frame, (a0, b0) = _equiangular_cells(vec, tile, psi, delta)
            if best is None or len(ij) < len(best[0]):
                best = ij, frame, a0, b0
        ij, frame, a0, b0 = best
        ca = a0 + (ij[:, 0] + 0.5) * delta
        cb = b0 + (ij[:, 1] + 0.5) * delta
        lon, lat = _grid_lonlat(frame, ca, cb)
        corners = np.array([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]) * delta
        blon, blat = _grid_lonlat(
            frame, ca[:, None] + corners[None, :, 0], cb[:, None] + corners[None, :, 1]
        )
        angle, ext = _fit_squares(lon, lat, blon, blat, size, pixel_arcmin)
        if np.all(ext <= half):
            return lon, lat, angle.astype(np.float32)
        delta *= max(0.9, min(0.995, half / float(np.max(ext))))


def dense_cover_nside(size, pixel_arcmin, overlap) -> int:
    """Smallest (RING, any integer) nside whose pixels are all within the covering radius
    ``(1 - overlap)`` x the inscribed radius of a patch (the dense grid)."""
    if not 0 <= overlap < 1:
        raise ValueError(f"clusters.patch.cover_overlap must be in [0, 1), got {overlap}")
    r_in = np.arctan(np.radians(size / 2.0 * pixel_arcmin / 60.0))
    r_cov = (1.0 - overlap) * r_in
    nside = max(1, int(np.sqrt(np.pi / 3) / r_cov / 2))
    while hp.max_pixrad(nside) > r_cov:
        nside += 1
    return nside


def dense_cover_centres(nside, tile_pixels, size, pixel_arcmin, overlap):
    """Centres (glon, glat) of the dense cover of the given RING pixels (at ``nside``)."""
    nc = dense_cover_nside(size, pixel_arcmin, overlap)
    vec = hp.pix2vec(nside, np.asarray(tile_pixels, dtype=np.int64))
    return hp.pix2ang(nc, np.unique(hp.vec2pix(nc, *vec)), lonlat=True)


def cover_redundancy(n_patches: int, size: int, pixel_arcmin: float, nside: int, tile: int):
    """Patch area of a cover over the area of the tile (1 = a tiling without overlap)."""
    patch_sr = (size * np.radians(pixel_arcmin / 60.0)) ** 2
    tile_sr = tiles.tile_pixels(nside, tile).size * hp.nside2pixarea(nside)
    return float(n_patches * patch_sr / tile_sr)


@dataclass
class CombineIndex:
    """Which patch pixels, with which weights, make each HEALPix pixel of a tile's map."""

    pixels: np.ndarray  # (M,) int64 sorted RING pixels at ``nside``
    in_tile: np.ndarray  # (M,) bool
    map_index: np.ndarray  # (K,) int32 into ``pixels``
    patch_index: np.ndarray  # (K,) int64 flat index into the (N, S, S) predictions
    weight: np.ndarray  # (K,) float32: sample points of the patch pixel in the HEALPix pixel
    nside: int
    margin: int
    n_patches: int
    size: int
    _sums: tuple | None = field(default=None, repr=False, compare=False)

    def arrays(self) -> dict:
        return {
            "pixels": self.pixels,
            "in_tile": self.in_tile,
            "map_index": self.map_index,
            "patch_index": self.patch_index,
            "weight": self.weight,
        }

    def attrs(self) -> dict:
        return {
            "nside": self.nside,
            "margin": self.margin,
            "n_patches": self.n_patches,
            "size": self.size,
            "subsample": SUBSAMPLE,
        }


def build_index(
    glon, glat, angle, flip, size: int, pixel_arcmin: float, nside: int, tile: int, margin: int
) -> CombineIndex:
    """The combination index of patches (glon, glat, angle, flip) on a map at ``nside``,
    keeping each patch's central square (``margin`` pixels from the edges)."""
    glon, glat, angle, flip = (
        np.atleast_1d(np.asarray(a)) for a in np.broadcast_arrays(glon, glat, angle, flip)
    )
    n = len(glon)
    keep = central_mask(size, margin)
    k = SUBSAMPLE
    lo, hi = int(margin) * k, (size - int(margin)) * k
    sub = np.arange(lo, hi) // k  # patch pixel of each kept sample point (per axis)
    local = (sub[:, None] * size + sub[None, :]).ravel()  # (Q,) flat pixel within a patch
    per_patch = int(keep.sum()) * k * k
    chunk = max(1, 2_000_000 // per_patch)
    pairs = []
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        vec = projection.patch_vectors(
            glon[sl], glat[sl], size * k, pixel_arcmin / k, angle[sl], flip[sl]
        )[:, lo:hi, lo:hi]
        hpix = hp.vec2pix(nside, vec[..., 0], vec[..., 1], vec[..., 2]).reshape(len(vec), -1)
        flat = (np.arange(s, s + len(vec))[:, None] * (size * size) + local[None, :]).ravel()
        key = hpix.ravel().astype(np.int64) * (n * size * size) + flat
        pairs.append(np.unique(key, return_counts=True))
    keys = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0, np.int64)
    counts = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, np.int64)
    hpix, flat = np.divmod(keys, n * size * size)
    pixels, map_index = np.unique(hpix, return_inverse=True)
    order = np.argsort(flat, kind="stable")  # gather predictions in memory order
    return CombineIndex(
        pixels=pixels.astype(np.int64),
        in_tile=tiles.tile_of_pixels(nside, pixels) == int(tile)
        if pixels.size
        else np.zeros(0, bool),
        map_index=map_index.ravel()[order].astype(np.int32),
        patch_index=flat[order].astype(np.int64),
        weight=counts[order].astype(np.float32),
        nside=int(nside),
        margin=int(margin),
        n_patches=n,
        size=int(size),
    )


def combine(prob, index: CombineIndex):
    """(mean, count) per pixel of ``index.pixels`` of the predictions ``prob`` (N, S, S):
    the weighted mean of the patch pixels (non-finite ones ignored) and how many patch
    pixels contributed."""
    prob = np.asarray(prob, dtype=np.float32)
    if prob.shape != (index.n_patches, index.size, index.size):
        raise ValueError(
            f"predictions {prob.shape} do not match the cover index "
            f"({index.n_patches} patches of {index.size}^2)"
        )
    vals = prob.reshape(-1)[index.patch_index]
    w = index.weight
    bad = ~np.isfinite(vals)
    m = index.pixels.size
    if bad.any():  # rare: the sums of weights are recomputed without the bad values
        vals, w = np.where(bad, 0.0, vals), np.where(bad, 0.0, w)
        wsum = np.bincount(index.map_index, weights=w, minlength=m)
        count = np.bincount(index.map_index, weights=(w > 0).astype(np.float64), minlength=m)
    else:  # the usual case: one bincount per tile, the sums of weights cached in the index
        if index._sums is None:
            index._sums = (
                np.bincount(index.map_index, weights=w, minlength=m),
                np.bincount(index.map_index, minlength=m).astype(np.float64),
            )
        wsum, count = index._sums
    total = np.bincount(index.map_index, weights=w * vals, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(wsum > 0, total / wsum, np.nan)
    return mean.astype(np.float32), count.astype(np.int32)


def write_index(h5file, index: CombineIndex) -> None:
    """Store ``index`` in an open HDF5 file (group ``combine``)."""
    if INDEX_GROUP in h5file:
        del h5file[INDEX_GROUP]
    g = h5file.create_group(INDEX_GROUP)
    for key, arr in index.arrays().items():
        g.create_dataset(key, data=arr, compression="gzip", shuffle=True)
    for key, v in index.attrs().items():
        g.attrs[key] = v


def read_index(h5file, path="") -> CombineIndex | None:
    """The index stored in an open HDF5 file, or None if it has none."""
    if INDEX_GROUP not in h5file:
        return None
    g = h5file[INDEX_GROUP]
    need = ("pixels", "in_tile", "map_index", "patch_index", "weight")
    missing = [k for k in need if k not in g]
    if missing:
        raise ValueError(f"{path}: group {INDEX_GROUP!r} lacks {', '.join(missing)}")
    if int(g.attrs.get("subsample", SUBSAMPLE)) != SUBSAMPLE:
        return None  # built by another version: rebuilt by the caller
    return CombineIndex(
        **{k: g[k][...] for k in need},
        nside=int(g.attrs["nside"]),
        margin=int(g.attrs["margin"]),
        n_patches=int(g.attrs["n_patches"]),
        size=int(g.attrs["size"]),
    )
