"""Synthetic clusters injected into the maps a detector reads: the selection function of any sky.

The completeness of a detector on real maps cannot be counted against a truth; it is measured
instead by adding clusters of known integrated Compton parameter Y5R500 and size theta500 to
the maps (the tile file of :mod:`skydetect.geometry.tiles`, and through it the cover patches
of the U-Net), running the detectors again and counting the injections they find (the
Planck PSZ1/PSZ2 approach, Planck 2013 XXIX section 5, Planck 2015 XXVII section 4).

Injected signal of a cluster in band ``b`` (map unit) at angular distance r (arcmin):

    d_b(r) = Y5R500 * a_b * [t_theta500 * B_b](r),

with ``a_b`` the band-integrated tSZ response per unit y of
:data:`skydetect.sky.instrument.CHANNELS` (1 for the y-map), ``t_theta500`` the projected
GNFW profile truncated at 5 R500 and normalised to unit integral
(:func:`skydetect.sky.physics.projected_profile` through its Hankel transform
:func:`skydetect.sky.physics.profile_transform`, the profile the mock paints its clusters
with), and ``B_b`` the band's Gaussian beam widened by the HEALPix pixel window (variance
``pixel area / 12``, the mock's Gaussian pixel window). The convolution is done in harmonic
space (:func:`beamed_profile`), and the profile is evaluated at the centres of the map
pixels. The GNFW parameters are one :class:`~skydetect.sky.physics.GNFW` per injection,
the ``profiles`` argument of :func:`signal_maps` (passed on by
:func:`skydetect.clusters.inject_run.run_injections`; None: Arnaud et al. 2010 for all): the
single place where per-cluster pressure-profile scatter enters.

Positions are uniform over the tile (its own pixels, not the margin), at least
``min_separation_arcmin`` from every existing candidate of every detector and from each
other, and where the mask (if any) is valid. Each injection is assigned a cell of the
Y5R500 x theta500 grid in turn (every cell gets ``n_per_tile / n_cells`` injections, to
within one) and its Y5R500 and theta500 are drawn log-uniformly inside its cell.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import healpy as hp
import numpy as np
from astropy.table import Table
from scipy import integrate, special

from skydetect.geometry import tiles as tilelib
from skydetect.sky import cluster_shapes, physics
from skydetect.sky.instrument import channel
from skydetect.sky.params import SimulationParams

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))
TRUNCATION_R500 = 5.0  # the mock's and the MMF's truncation radius
_SUBPIX = 16  # positions are drawn on pixels at nside x this (quasi-continuous)
INJECTION_COLUMNS = ("INJ_ID", "TILE", "GLON", "GLAT", "Y5R500", "THETA500", "Y_BIN", "THETA_BIN")


class InjectionError(ValueError):
    """Bad injection configuration or a tile with no room for the injections."""


@dataclass(frozen=True)
class InjectConfig:
    """Config ``clusters.inject``: grid edges (Y5R500 arcmin^2, theta500 arcmin), counts."""

    n_per_tile: int
    y5r500_edges: tuple
    theta500_edges: tuple
    min_separation_arcmin: float

    def __post_init__(self):
        for key, edges in (("y5r500_edges", self.y5r500_edges),
                           ("theta500_edges", self.theta500_edges)):  # fmt: skip
            e = np.asarray(edges, float)
            if e.ndim != 1 or e.size < 2 or np.any(e <= 0) or np.any(np.diff(e) <= 0):
                raise InjectionError(
                    f"clusters.inject.{key} must be >= 2 positive, increasing edges; got {edges}"
                )
        if self.n_per_tile < 1:
            raise InjectionError(f"clusters.inject.n_per_tile must be >= 1, got {self.n_per_tile}")
        if self.min_separation_arcmin < 0:
            raise InjectionError("clusters.inject.min_separation_arcmin must be >= 0")

    @classmethod
    def from_config(cls, inject: dict) -> InjectConfig:
        return cls(
            n_per_tile=int(inject["n_per_tile"]),
            y5r500_edges=tuple(float(v) for v in inject["y5r500_edges"]),
            theta500_edges=tuple(float(v) for v in inject["theta500_edges"]),
            min_separation_arcmin=float(inject["min_separation_arcmin"]),
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(n_theta, n_y): the grid's shape (rows theta500, columns Y5R500)."""
        return len(self.theta500_edges) - 1, len(self.y5r500_edges) - 1


# --------------------------------------------------------------------------- the profile
def beamed_profile(theta500: float, fwhm_arcmin: float, nside: int | None = None,
                   gnfw: physics.GNFW = physics.ARNAUD10):  # fmt: skip
    """(r, g): the unit-integral projected GNFW profile of size ``theta500`` (arcmin)
    convolved with a Gaussian beam of ``fwhm_arcmin`` (and the Gaussian HEALPix pixel window
    of ``nside`` if given), on a grid of radii r (arcmin) out to where it vanishes; g in
    arcmin^-2, so that a cluster of Y5R500 [arcmin^2] adds ``Y5R500 * g(r)``.

    g(r) = 1 / (2 pi) int_0^inf k u(k theta500) b(k) J0(k r) dk, with u the profile's
    Hankel transform (u(0) = 1) and b(k) = exp(-k^2 sigma^2 / 2)."""
    if theta500 <= 0 or fwhm_arcmin < 0:
        raise InjectionError(f"theta500 {theta500} and beam FWHM {fwhm_arcmin} must be > 0")
    var = (fwhm_arcmin * FWHM_TO_SIGMA) ** 2
    if nside:
        var += hp.nside2pixarea(int(nside)) * physics.ARCMIN_PER_RAD**2 / 12.0
    sigma = max(np.sqrt(var), 0.05 * theta500)
    r_max = TRUNCATION_R500 * theta500 + 5.0 * sigma
    k_max = 8.0 / sigma  # b(k_max) = exp(-32)
    n_k = int(np.clip(k_max / (0.05 * 2 * np.pi / r_max), 256, 8192)) | 1
    k = np.linspace(0.0, k_max, n_k)
    u = _profile_transform_table(gnfw)(k * theta500)
    b = np.exp(-0.5 * (k * sigma) ** 2)
    r = np.linspace(0.0, r_max, int(np.clip(4 * r_max / sigma, 64, 2048)))
    g = integrate.simpson(k * u * b * special.j0(np.outer(r, k)), x=k, axis=1) / (2 * np.pi)
    return r, g


_TRANSFORMS: dict = {}


def _profile_transform_table(gnfw: physics.GNFW):
    """u(kappa) of ``gnfw`` (kappa = k theta500) as an interpolating function (tabulated
    once per profile from :func:`skydetect.sky.physics.profile_transform`)."""
    if gnfw not in _TRANSFORMS:
        kk = np.concatenate([np.linspace(0.0, 20.0, 801), np.geomspace(20.05, 4000.0, 1200)])
        uu = physics.profile_transform(kk, gnfw, TRUNCATION_R500)
        _TRANSFORMS[gnfw] = lambda kappa: np.interp(kappa, kk, uu, right=0.0)
    return _TRANSFORMS[gnfw]


def band_fwhm(band: str, overrides: dict | None = None) -> float:
    """Beam FWHM (arcmin) of ``band``: the instrument's (PSZ2 beams) unless overridden."""
    return float((overrides or {}).get(str(band), channel(band).fwhm_arcmin))


# --------------------------------------------------------------------------- positions
def _unit(glon, glat) -> np.ndarray:
    return np.atleast_2d(hp.ang2vec(np.asarray(glon, float), np.asarray(glat, float), lonlat=True))


def draw_injections(tile: tilelib.Tile, cfg: InjectConfig, rng, avoid=None,
                    mask=None, max_tries: int = 50) -> Table:  # fmt: skip
    """Positions and (Y5R500, theta500) of ``cfg.n_per_tile`` injections in ``tile``.

    ``avoid``: (glon, glat) arrays of existing candidates; ``mask``: a callable
    (glon, glat) -> bool array, True where an injection may go (None: everywhere).
    Raises :class:`InjectionError` when the tile has no room for them."""
    own = tile.pixels[tile.in_tile]
    nside = tile.nside
    sep = np.radians(cfg.min_separation_arcmin / 60.0)
    cos_sep = np.cos(sep)
    taken = np.zeros((0, 3)) if avoid is None or len(avoid[0]) == 0 else _unit(*avoid)
    n_avoid = len(taken)
    glon, glat = [], []
    for _ in range(max_tries):
        need = cfg.n_per_tile - len(glon)
        if need == 0:
            break
        parent = hp.ring2nest(nside, rng.choice(own, size=4 * need + 16))
        child = parent * _SUBPIX**2 + rng.integers(0, _SUBPIX**2, parent.size)
        lon, lat = hp.pix2ang(nside * _SUBPIX, child, nest=True, lonlat=True)
        if mask is not None:
            ok = np.asarray(mask(lon, lat), bool)
            lon, lat = lon[ok], lat[ok]
        vec = _unit(lon, lat) if lon.size else np.zeros((0, 3))
        for i in range(len(vec)):
            if len(taken) and np.max(taken @ vec[i]) > cos_sep:
                continue
            taken = np.vstack([taken, vec[i]])
            glon.append(float(lon[i]))
            glat.append(float(lat[i]))
            if len(glon) == cfg.n_per_tile:
                break
    if len(glon) < cfg.n_per_tile:
        raise InjectionError(
            f"tile {tile.tile}: room for only {len(glon)} of clusters.inject.n_per_tile = "
            f"{cfg.n_per_tile} injections {cfg.min_separation_arcmin}' from each other and from "
            f"{n_avoid} candidates{' inside the mask' if mask is not None else ''}: lower "
            "n_per_tile or min_separation_arcmin"
        )
    n_theta, n_y = cfg.shape
    cell = rng.permutation(np.arange(cfg.n_per_tile) % (n_theta * n_y))
    t_bin, y_bin = np.divmod(cell, n_y)
    ly, lt = np.log(cfg.y5r500_edges), np.log(cfg.theta500_edges)
    y5 = np.exp(rng.uniform(ly[y_bin], ly[y_bin + 1]))
    theta = np.exp(rng.uniform(lt[t_bin], lt[t_bin + 1]))
    return Table(
        [np.arange(cfg.n_per_tile), np.full(cfg.n_per_tile, tile.tile, np.int16), glon, glat,
         y5, theta, y_bin.astype(np.int16), t_bin.astype(np.int16)],  # fmt: skip
        names=INJECTION_COLUMNS,
        units=[None, None, "deg", "deg", "arcmin2", "arcmin", None, None],
    )


def read_mask(path, field: int = 0):
    """A HEALPix mask file (any ordering; 1 valid, 0 masked, e.g. a Planck HFI mask) as a
    callable (glon, glat) -> bool, True where an injection may go (value >= 0.5)."""
    try:
        m = hp.read_map(str(path), field=field, dtype=np.float32)
    except Exception as exc:
        raise InjectionError(f"cannot read mask clusters.inject.mask {path}: {exc}") from exc
    nside = hp.get_nside(m)
    if not np.any(m >= 0.5):
        raise InjectionError(f"mask {path} leaves no valid pixel (clusters.inject.mask)")

    def valid(glon, glat):
        return m[hp.ang2pix(nside, np.asarray(glon, float), np.asarray(glat, float),
                            lonlat=True)] >= 0.5  # fmt: skip

    return valid


def scattered_profiles(simulate_cfg: dict | None):
    """A callable ``(injections, rng) -> [GNFW, ...]``: one pressure profile per injection,
    drawn around Arnaud et al. 2010 with the mock's scatter (``planck.simulate.profile_*``;
    :func:`skydetect.sky.cluster_shapes.draw_library`), so that injected clusters scatter
    as the mock's do. The injected clusters stay circular (``axis_ratio_*`` is not used)."""
    params = SimulationParams.from_config(simulate_cfg)

    def draw(injections, rng) -> list[physics.GNFW]:
        n = len(injections)
        if n == 0:
            return []
        lib = cluster_shapes.draw_library(replace(params, profile_library_size=n), rng)
        return [physics.GNFW(c500=float(c), gamma=float(g), alpha=float(a), beta=float(b))
                for c, g, a, b in zip(lib.c500, lib.gamma, lib.alpha, lib.beta, strict=True)]  # fmt: skip

    return draw


# --------------------------------------------------------------------------- the signal
def signal_maps(tile: tilelib.Tile, injections: Table, bands, fwhm_overrides=None,
                profiles=None) -> dict[str, np.ndarray]:  # fmt: skip
    """The injected signal (band -> (P,) float32 on ``tile.pixels``, map units).

    ``profiles``: one :class:`~skydetect.sky.physics.GNFW` per injection (None: Arnaud et
    al. 2010 for all): where per-cluster pressure-profile scatter is passed in."""
    n = len(injections)
    if profiles is None:
        profiles = [physics.ARNAUD10] * n
    if len(profiles) != n:
        raise InjectionError(f"{len(profiles)} GNFW profiles for {n} injections")
    out = {str(b): np.zeros(tile.pixels.size, np.float64) for b in bands}
    vec = _unit(injections["GLON"], injections["GLAT"]) if n else np.zeros((0, 3))
    pix_area = hp.nside2pixarea(tile.nside) * physics.ARCMIN_PER_RAD**2
    for i in range(n):
        theta, y5 = float(injections["THETA500"][i]), float(injections["Y5R500"][i])
        tables = {b: beamed_profile(theta, band_fwhm(b, fwhm_overrides), tile.nside, profiles[i])
                  for b in out}  # fmt: skip
        r_max = max(t[0][-1] for t in tables.values())
        pix = hp.query_disc(tile.nside, vec[i], np.radians(r_max / 60.0))
        if pix.size == 0:
            pix = np.array([hp.vec2pix(tile.nside, *vec[i])])
        idx = np.searchsorted(tile.pixels, pix)
        ok = idx < tile.pixels.size
        ok[ok] = tile.pixels[idx[ok]] == pix[ok]
        cosang = np.clip(np.array(hp.pix2vec(tile.nside, pix)).T @ vec[i], -1.0, 1.0)
        r = np.degrees(np.arccos(cosang)) * 60.0
        for b, (rr, g) in tables.items():
            prof = np.interp(r, rr, g, right=0.0)
            # pixel values renormalised to the integral Y (as the mock paints its clusters):
            # exact where pixels are as large as the beam, a per-mille change at 1.7'-3.4'
            prof = prof / max(prof.sum() * pix_area, 1e-300)
            out[b][idx[ok]] += y5 * channel(b).tsz_per_y * prof[ok]
    return {b: m.astype(np.float32) for b, m in out.items()}


def add_signal(tile: tilelib.Tile, signal: dict) -> tilelib.Tile:
    """A copy of ``tile`` with ``signal`` (band -> (P,)) added to its maps (NaN stays NaN)."""
    maps = {b: (m + signal[b]).astype(np.float32) if b in signal else m
            for b, m in tile.maps.items()}  # fmt: skip
    return tilelib.Tile(tile.tile, tile.nside, tile.margin_deg, tile.pixels, tile.in_tile, maps,
                        tile.path)  # fmt: skip


def signal_patches(tile: tilelib.Tile, signal: dict, cover: dict, bands, size: int,
                   pixel_arcmin: float, sampling: str) -> np.ndarray:  # fmt: skip
    """The injected signal seen through the cover patches (N, S, S, B): sampled from the
    tile's pixels exactly as ``cut_cover`` samples the maps, so that cover patches plus this
    equal the cover patches of the injected tile."""
    sig = tilelib.Tile(tile.tile, tile.nside, tile.margin_deg, tile.pixels, tile.in_tile,
                       {str(b): signal[str(b)] for b in bands})  # fmt: skip
    return sig.cut_patches(cover["glon"], cover["glat"], list(bands), size, pixel_arcmin,
                           cover["angle"], cover["flip"], sampling)  # fmt: skip


# --------------------------------------------------------------------------- matching
def match_injections(injections: Table, detections: Table, score: str, scale: float,
                     min_arcmin: float, max_arcmin: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(best score, separation in arcmin) per injection: the highest ``score`` among the
    detections within clip(scale x THETA500, min, max) of it (the evaluation's match
    radius), NaN where there is none."""
    n = len(injections)
    best, sep = np.full(n, np.nan), np.full(n, np.nan)
    if n == 0 or len(detections) == 0:
        return best, sep
    radius = np.clip(scale * np.asarray(injections["THETA500"], float), min_arcmin, max_arcmin)
    iv = _unit(injections["GLON"], injections["GLAT"])
    dv = _unit(np.asarray(detections["GLON"], float), np.asarray(detections["GLAT"], float))
    d = np.degrees(np.arccos(np.clip(iv @ dv.T, -1.0, 1.0))) * 60.0  # (n, m)
    s = np.nan_to_num(np.asarray(detections[score], float), nan=-np.inf)
    within = d <= radius[:, None]
    masked = np.where(within, s[None, :], -np.inf)
    j = np.argmax(masked, axis=1)
    hit = within.any(axis=1)
    best[hit] = masked[hit, j[hit]]
    sep[hit] = d[hit, j[hit]]
    best[hit & ~np.isfinite(best)] = np.nan
    return best, sep
