"""Gnomonic (TAN) patch geometry: patch pixel <-> Galactic (l, b) <-> astropy WCS.

The one home of the patch geometry. A patch of ``size`` x ``size`` pixels of ``pixel_arcmin``
is an array ``patch[y, x]`` (row ``y``, column ``x``, 0-based) as in an image of the sky shown
with ``origin="lower"``: Galactic latitude increases with ``y`` and longitude increases to the
*left* (decreasing ``x``). The patch centre (``glon``, ``glat``) lies between the two middle
pixels (FITS ``CRPIX = (size + 1) / 2``).

Orientation: ``flip`` mirrors the patch along ``x`` first, then ``angle`` (degrees) rotates the
pixel grid counter-clockwise on the sky. Both are encoded in the WCS ``PC`` matrix of
:func:`patch_wcs`, so ``patch_lonlat`` and ``patch_wcs`` describe exactly the same geometry.

All functions are vectorised: ``glon``, ``glat``, ``angle`` and ``flip`` may be arrays of the
same length N (one entry per patch); outputs then gain a leading axis N.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

__all__ = [
    "lonlat_to_vec",
    "vec_to_lonlat",
    "tangent_basis",
    "patch_offsets",
    "patch_vectors",
    "patch_lonlat",
    "lonlat_to_patch",
    "patch_wcs",
    "offset_lonlat",
]


def lonlat_to_vec(lon, lat) -> np.ndarray:
    """Unit vectors (..., 3) of Galactic (lon, lat) in degrees."""
    lon = np.radians(np.asarray(lon, dtype=float))
    lat = np.radians(np.asarray(lat, dtype=float))
    cb = np.cos(lat)
    return np.stack([cb * np.cos(lon), cb * np.sin(lon), np.sin(lat)], axis=-1)


def vec_to_lonlat(vec) -> tuple[np.ndarray, np.ndarray]:
    """(lon in [0, 360), lat) in degrees of vectors (..., 3) (need not be normalised)."""
    vec = np.asarray(vec, dtype=float)
    x, y, z = vec[..., 0], vec[..., 1], vec[..., 2]
    lon = np.degrees(np.arctan2(y, x)) % 360.0
    lat = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return lon, lat


def tangent_basis(glon, glat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(e_r, e_l, e_b), each (..., 3): the centre vector and the unit vectors towards
    increasing l and increasing b at that centre (well defined at the poles as the limit
    along the meridian ``glon``)."""
    lon = np.radians(np.asarray(glon, dtype=float))
    lat = np.radians(np.asarray(glat, dtype=float))
    cl, sl, cb, sb = np.cos(lon), np.sin(lon), np.cos(lat), np.sin(lat)
    e_r = np.stack([cb * cl, cb * sl, sb], axis=-1)
    e_l = np.stack([-sl, cl, np.zeros_like(cl)], axis=-1)
    e_b = np.stack([-sb * cl, -sb * sl, cb], axis=-1)
    return e_r, e_l, e_b


def _pc_matrix(angle, flip) -> np.ndarray:
    """PC matrices (..., 2, 2) mapping pixel offsets (dx, dy) to (-xi, eta) in pixel units."""
    a = np.radians(np.asarray(angle, dtype=float))
    f = np.where(np.asarray(flip, dtype=bool), -1.0, 1.0)
    a, f = np.broadcast_arrays(a, f)
    c, s = np.cos(a), np.sin(a)
    # (u, v) = R(angle) @ diag(f, 1) @ (dx, dy);  xi = -u, eta = v;  WCS: CDELT1 = -pix.
    return np.stack([np.stack([c * f, -s], -1), np.stack([s * f, c], -1)], -2)


def patch_offsets(size: int, pixel_arcmin: float, angle=0.0, flip=False):
    """Tangent-plane coordinates (xi, eta) in radians of the pixel centres, shape (..., S, S).

    ``xi`` points to increasing l, ``eta`` to increasing b (gnomonic plane at the centre).
    """
    c = (size - 1) / 2.0
    d = np.arange(size, dtype=float) - c
    dy, dx = np.meshgrid(d, d, indexing="ij")  # patch[y, x]
    pc = _pc_matrix(angle, flip)[..., None, None, :, :]
    u = pc[..., 0, 0] * dx + pc[..., 0, 1] * dy
    v = pc[..., 1, 0] * dx + pc[..., 1, 1] * dy
    scale = np.radians(pixel_arcmin / 60.0)
    return -u * scale, v * scale


def patch_vectors(glon, glat, size: int, pixel_arcmin: float, angle=0.0, flip=False):
    """Unit vectors (..., S, S, 3) of the pixel centres of patches centred on (glon, glat)."""
    glon, glat, angle, flip = np.broadcast_arrays(
        np.asarray(glon, float), np.asarray(glat, float), np.asarray(angle, float), flip
    )
    xi, eta = patch_offsets(size, pixel_arcmin, angle, flip)
    norm = 1.0 / np.sqrt(1.0 + xi**2 + eta**2)
    e_r, e_l, e_b = (e[..., None, None, :] for e in tangent_basis(glon, glat))
    vec = np.empty((*xi.shape, 3))
    for k in range(3):  # component by component: fewer and smaller temporaries
        vec[..., k] = (e_r[..., k] + xi * e_l[..., k] + eta * e_b[..., k]) * norm
    return vec


def patch_lonlat(glon, glat, size: int, pixel_arcmin: float, angle=0.0, flip=False):
    """Galactic (lon, lat) in degrees of the pixel centres, each of shape (..., S, S).

    ``lon[..., y, x]`` is the longitude of ``patch[..., y, x]``; lon in [0, 360).
    """
    return vec_to_lonlat(patch_vectors(glon, glat, size, pixel_arcmin, angle, flip))


def lonlat_to_patch(lon, lat, glon, glat, size: int, pixel_arcmin: float, angle=0.0, flip=False):
    """Fractional pixel coordinates (x, y) of sky points (lon, lat) in a patch.

    ``x`` is the column and ``y`` the row (0-based; pixel centres at integers), so the point
    falls in ``patch[round(y), round(x)]``. Inputs broadcast together. Points on the far
    hemisphere (no gnomonic image) get NaN.
    """
    lon, lat, glon, glat, angle, flip = np.broadcast_arrays(
        np.asarray(lon, float),
        np.asarray(lat, float),
        np.asarray(glon, float),
        np.asarray(glat, float),
        np.asarray(angle, float),
        flip,
    )
    v = lonlat_to_vec(lon, lat)
    e_r, e_l, e_b = tangent_basis(glon, glat)
    d = np.sum(v * e_r, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(d > 0, d, np.nan)
        xi = np.sum(v * e_l, axis=-1) / d
        eta = np.sum(v * e_b, axis=-1) / d
    scale = np.radians(pixel_arcmin / 60.0)
    u, w = -xi / scale, eta / scale
    pc = _pc_matrix(angle, flip)
    # PC is orthogonal (rotation times reflection): its inverse is its transpose.
    dx = pc[..., 0, 0] * u + pc[..., 1, 0] * w
    dy = pc[..., 0, 1] * u + pc[..., 1, 1] * w
    c = (size - 1) / 2.0
    return dx + c, dy + c


def patch_wcs(glon: float, glat: float, size: int, pixel_arcmin: float, angle=0.0, flip=False):
    """astropy WCS (GLON-TAN / GLAT-TAN) of one patch, identical to :func:`patch_lonlat`."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
    w.wcs.crval = [float(glon) % 360.0, float(glat)]
    w.wcs.crpix = [(size + 1) / 2.0, (size + 1) / 2.0]
    w.wcs.cdelt = [-pixel_arcmin / 60.0, pixel_arcmin / 60.0]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.pc = _pc_matrix(float(angle), bool(flip))
    w.wcs.lonpole = 180.0
    w.pixel_shape = (size, size)
    w.wcs.set()
    return w


def offset_lonlat(glon, glat, dxi_deg, deta_deg) -> tuple[np.ndarray, np.ndarray]:
    """Point reached from (glon, glat) by a gnomonic tangent-plane offset (dxi, deta) in
    degrees (dxi towards increasing l, deta towards increasing b): shifts without the
    cos(b) distortion of shifting l and b directly."""
    e_r, e_l, e_b = tangent_basis(glon, glat)
    xi = np.radians(np.asarray(dxi_deg, float))[..., None]
    eta = np.radians(np.asarray(deta_deg, float))[..., None]
    return vec_to_lonlat(e_r + xi * e_l + eta * e_b)
