"""Cluster shapes of the mock Planck sky: per-cluster GNFW pressure profiles scattered around
Arnaud et al. 2010, projected ellipticity, and the painting of y (and y-weighted) maps.

Real clusters are not the universal profile the MMF filters with (``../shared/docs/sky-model.md``
§1, "What keeps the MMF from being optimal"):

- **profile scatter**: individual REXCESS fits (Arnaud et al. 2010, A&A 517, A92, Fig. 2 and
  Appendix C) and Planck Intermediate Results V (A&A 550, A131, individual fits) scatter
  widely around the universal set: c500 roughly 0.5-3, gamma 0-0.8, outer slope beta 3-8;
  cool cores are more peaked. Each parameter is drawn around the A10 value: log10 c500 and
  log10 alpha Gaussian (``profile_c500_scatter_dex``, ``profile_alpha_scatter_dex``), gamma
  and beta Gaussian (``profile_gamma_sigma``, ``profile_beta_sigma``) clipped to
  [0, 0.9] and [3, 8];
- **P0** is the amplitude that gives each cluster its Y5R500 from the Y-M relation (with its
  0.075 dex scatter, Planck 2013 XX): P0 = 8.403 (Y5R500 / <Y5R500>(M, z)) I_A10 / I_shape,
  I the volume integral of the shape within 5 R500; it carries the normalisation scatter at
  fixed mass;
- **ellipticity**: projected axis ratio q ~ N(0.8, 0.1) clipped to [0.5, 1] (SZ/X-ray axis
  ratios 0.6-0.9, median ~0.8: Kawahara 2010, ApJ 719, 1926; Lau et al. 2012, ApJ 755, 116),
  area-preserving, position angle uniform.

Profiles are drawn as a library of ``profile_library_size`` independent (c500, gamma, alpha,
beta, q) sets, each cluster taking one at random: the projection and the matched-filter
tables are then computed once per set, not per cluster (the mock has ~10^5 clusters).
"""

from __future__ import annotations

from dataclasses import dataclass

import healpy as hp
import numpy as np
from scipy import integrate, special
from tqdm import tqdm

from skydetect.sky import physics

X_MAX = 5.0  # truncation radius, R500 (as the MMF template)
_X = np.concatenate([[0.0], np.geomspace(1e-3, X_MAX, 255)])
_T, _TW = np.polynomial.legendre.leggauss(96)
_T, _TW = 0.5 * (_T + 1.0), 0.5 * _TW  # Gauss-Legendre on [0, 1]


def project_gnfw(c500, gamma, alpha, beta, x=_X, x_max: float = X_MAX) -> np.ndarray:
    """Normalised projected profiles f(x) (n, len(x)) of GNFW spheres truncated at ``x_max``
    (integral of 2 pi x f over [0, x_max] = 1), for arrays of parameters (n,).

    The line-of-sight integral uses l = l_max t^2 and Gauss-Legendre nodes in t, which tames
    the central cusp; :func:`skydetect.sky.physics.projected_profile` is the quad reference.
    """
    c500, gamma, alpha, beta = (np.atleast_1d(np.asarray(a, float))[:, None, None]
                                for a in (c500, gamma, alpha, beta))  # fmt: skip
    lmax = np.sqrt(np.maximum(x_max**2 - x**2, 0.0))[:, None]
    ell = lmax * _T**2
    r = np.sqrt(x[:, None] ** 2 + ell**2) + 1e-12
    # float32: the profile is renormalised below, and a 5x faster exp/log on ~10^7 values
    log_cx = (np.log(c500) + np.log(r)[None]).astype(np.float32)
    g, a, e = (v.astype(np.float32) for v in (gamma, alpha, (beta - gamma) / alpha))
    p = np.exp(-g * log_cx - e * np.log1p(np.exp(a * log_cx)))
    f = 2.0 * np.sum(p * (2.0 * lmax * _T * _TW)[None], axis=2, dtype=np.float64)
    norm = integrate.simpson(2.0 * np.pi * x * f, x=x, axis=1)
    return f / norm[:, None]


def sphere_integral(c500, gamma, alpha, beta, x_max: float = X_MAX) -> np.ndarray:
    """Integral of x^2 p(x) / P0 over [0, x_max] (Y_sph(x_max) per unit P0), per parameter set."""
    x = np.geomspace(1e-5, x_max, 600)
    c500, gamma, alpha, beta = (np.atleast_1d(np.asarray(a, float))[:, None]
                                for a in (c500, gamma, alpha, beta))  # fmt: skip
    cx = c500 * x[None]
    p = 1.0 / (cx**gamma * (1.0 + cx**alpha) ** ((beta - gamma) / alpha))
    return integrate.simpson(p * x**3, x=np.log(x), axis=1)


@dataclass(frozen=True)
class ShapeLibrary:
    """``n`` drawn shapes: GNFW parameters, axis ratio, and the projected profiles on ``x``."""

    c500: np.ndarray
    gamma: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    axis_ratio: np.ndarray
    x: np.ndarray
    f: np.ndarray  # (n, len(x))

    def __len__(self) -> int:
        return self.c500.size

    def transform(self, k: np.ndarray) -> np.ndarray:
        """Hankel transforms u(k) (n, len(k)) of the circular profiles, u(0) = 1 (trapezoid
        rule on a fine grid that resolves J0 up to k ~ 300)."""
        xf = np.concatenate([np.geomspace(1e-4, 0.05, 120), np.linspace(0.05, X_MAX, 2500)[1:]])
        ff = np.array([np.interp(xf, self.x, fi) for fi in self.f])  # (n, nx)
        w = np.zeros_like(xf)
        dx = np.diff(xf)
        w[:-1] += 0.5 * dx
        w[1:] += 0.5 * dx
        kernel = special.j0(np.outer(np.asarray(k, float), xf)) * (2.0 * np.pi * xf * w)[None]
        u = ff @ kernel.T
        return u / (ff @ (2.0 * np.pi * xf * w))[:, None]


def make_library(c500, gamma, alpha, beta, axis_ratio) -> ShapeLibrary:
    arrs = [np.atleast_1d(np.asarray(a, float)) for a in (c500, gamma, alpha, beta, axis_ratio)]
    return ShapeLibrary(*arrs, x=_X, f=project_gnfw(*arrs[:4]))


def draw_library(params, rng) -> ShapeLibrary:
    """``params.profile_library_size`` shapes drawn around Arnaud 2010 (module docstring)."""
    a10 = physics.ARNAUD10
    n = int(params.profile_library_size)
    c500 = a10.c500 * 10 ** (params.profile_c500_scatter_dex * rng.standard_normal(n))
    gamma = np.clip(a10.gamma + params.profile_gamma_sigma * rng.standard_normal(n), 0.0, 0.9)
    alpha = a10.alpha * 10 ** (params.profile_alpha_scatter_dex * rng.standard_normal(n))
    beta = np.clip(a10.beta + params.profile_beta_sigma * rng.standard_normal(n), 3.0, 8.0)
    q = np.clip(params.axis_ratio_mean + params.axis_ratio_sigma * rng.standard_normal(n), 0.5, 1)
    return make_library(c500, gamma, alpha, beta, q)


def assign_shapes(truth, library: ShapeLibrary, rng) -> None:
    """Give every truth cluster a library shape and a position angle; sets the columns
    SHAPE (library index), C500 GAMMA ALPHA BETA P0 AXIS_RATIO POS_ANGLE [deg]."""
    n = len(truth)
    k = rng.integers(0, len(library), n)
    truth["SHAPE"] = k
    truth["POS_ANGLE"] = rng.uniform(0.0, 180.0, n)
    for col, arr in (("C500", library.c500), ("GAMMA", library.gamma), ("ALPHA", library.alpha),
                     ("BETA", library.beta), ("AXIS_RATIO", library.axis_ratio)):  # fmt: skip
        truth[col] = arr[k]
    a10 = physics.ARNAUD10
    i_a10 = sphere_integral(a10.c500, a10.gamma, a10.alpha, a10.beta)[0]
    i_lib = sphere_integral(library.c500, library.gamma, library.alpha, library.beta)
    m500, z = np.asarray(truth["M500"], float), np.asarray(truth["Z"], float)
    # mean Y-M relation: Y ~ M^alpha at fixed z (tabulated in z: D_A per cluster is slow)
    zg = np.linspace(min(z.min(initial=0.01), 0.01), max(z.max(initial=2.0), 2.0), 1024)
    y_mean = np.interp(z, zg, physics.y5r500_arcmin2(1.0, zg)) * m500 ** physics.YMRelation().alpha
    truth["P0"] = a10.p0 * np.asarray(truth["Y5R500"], float) / y_mean * i_a10 / i_lib[k]


def elliptical_radius(dx, dy, axis_ratio: float, pos_angle_deg: float):
    """Area-preserving elliptical radius of offsets (dx east, dy north): the major axis at
    ``pos_angle_deg`` east of north, q = minor / major."""
    pa = np.radians(pos_angle_deg)
    major = dx * np.sin(pa) + dy * np.cos(pa)
    minor = dx * np.cos(pa) - dy * np.sin(pa)
    return np.sqrt(axis_ratio * major**2 + minor**2 / axis_ratio)


def _tangent_offsets(nside, pix, lon_deg, lat_deg):
    """East/north offsets [arcmin] of pixels from their centres (gnomonic); the centres are
    scalars or one per pixel."""
    lon = np.atleast_1d(np.radians(lon_deg))
    lat = np.atleast_1d(np.radians(lat_deg))
    cl, sl, cb, sb = np.cos(lon), np.sin(lon), np.cos(lat), np.sin(lat)
    v = np.array(hp.pix2vec(nside, pix))
    cosang = np.clip(v[0] * cb * cl + v[1] * cb * sl + v[2] * sb, 1e-6, None)
    east = -v[0] * sl + v[1] * cl
    north = -v[0] * sb * cl - v[1] * sb * sl + v[2] * cb
    scale = physics.ARCMIN_PER_RAD / cosang
    return east * scale, north * scale


def _profile_at(library: ShapeLibrary, shape: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each shape's tabulated profile at x (linear interpolation, 0 beyond the table)."""
    xt = library.x
    i = np.clip(np.searchsorted(xt, x, side="right") - 1, 0, xt.size - 2)
    frac = (x - xt[i]) / (xt[i + 1] - xt[i])
    out = library.f[shape, i] * (1.0 - frac) + library.f[shape, i + 1] * frac
    return np.where(x <= xt[-1], out, 0.0)


def paint_clusters(nside: int, truth, library: ShapeLibrary, weights=None, progress=True,
                   chunk: int = 20000):  # fmt: skip
    """Compton-y map (RING) of the truth clusters, each with its library shape, axis ratio and
    position angle, within the ellipse of semi-minor axis 5 theta500 sqrt(q); renormalised
    so that each cluster's integrated y is its Y5R500. ``weights`` ({name: per-cluster
    factor}) adds maps of factor x y: returns ``{"y": ymap, name: map, ...}``. The clusters
    are painted ``chunk`` at a time (one vector operation over all their pixels)."""
    weights = {k: np.asarray(w, float) for k, w in (weights or {}).items()}
    npix = hp.nside2npix(nside)
    maps = {"y": np.zeros(npix), **{k: np.zeros(npix) for k in weights}}
    pix_area = hp.nside2pixarea(nside) * physics.ARCMIN_PER_RAD**2
    glon, glat = np.asarray(truth["GLON"], float), np.asarray(truth["GLAT"], float)
    vec = hp.ang2vec(glon, glat, lonlat=True)
    theta500 = np.asarray(truth["THETA500"], float)
    y5 = np.asarray(truth["Y5R500"], float)
    shape = np.asarray(truth["SHAPE"], int)
    q, pa = np.asarray(truth["AXIS_RATIO"], float), np.asarray(truth["POS_ANGLE"], float)
    radius = np.radians(X_MAX * theta500 / np.sqrt(q) / 60.0)
    centre = hp.ang2pix(nside, glon, glat, lonlat=True)
    starts = range(0, len(truth), chunk)
    for start in tqdm(starts, desc="paint clusters", mininterval=5, disable=not progress):
        sel = np.arange(start, min(start + chunk, len(truth)))
        discs = [hp.query_disc(nside, vec[i], radius[i]) for i in sel]
        discs = [d if d.size else centre[i : i + 1] for d, i in zip(discs, sel, strict=True)]
        counts = np.array([d.size for d in discs])
        pix = np.concatenate(discs)
        owner = np.repeat(sel, counts)
        dx, dy = _tangent_offsets(nside, pix, glon[owner], glat[owner])
        x = elliptical_radius(dx, dy, q[owner], pa[owner]) / theta500[owner]
        prof = _profile_at(library, shape[owner], x)
        local = owner - start
        total = np.bincount(local, prof, minlength=sel.size)
        flat = total[local] <= 0  # nothing inside the table: flat over the disc
        prof[flat] = 1.0
        total = np.bincount(local, prof, minlength=sel.size)
        y = y5[owner] * prof / (total[local] * pix_area)
        maps["y"] += np.bincount(pix, y, minlength=npix)
        for name, w in weights.items():
            maps[name] += np.bincount(pix, w[owner] * y, minlength=npix)
    return maps
