"""Forced MMF photometry: S/N, Y5R500, theta500 and a position error at given positions.

Any detector's candidate (a U-Net peak, an MMF peak, a combined entry) is measured by the same
filter as :func:`skydetect.clusters.mmf.run_tile`: a flat patch of the configured size and
pixel, centred on the candidate (the candidate on a pixel centre), apodised and masked the
same way, its noise cross-spectra estimated from the patch itself (with the bright-cluster
subtraction pass). The filter gives, at the candidate's pixel and for every theta500 of the
grid, the estimate ``Y_hat(theta)`` and its noise ``sigma(theta)``.

The Y-theta likelihood (Melin et al. 2006; Planck 2015 XXVII, PSZ2 sect. 3.2): for a cluster of
(Y, theta) at that position, ``-2 ln L = const - 2 Y Y_hat / sigma^2 + Y^2 / sigma^2``, so at
fixed theta Y is Gaussian with mean ``Y_hat`` and width ``sigma``, and theta has the marginal
weight ``w(theta) = sigma sqrt(2 pi) exp(Y_hat^2 / 2 sigma^2)``. ``Y_hat`` and ``log sigma`` are
interpolated across the grid (monotone cubic in log theta, :data:`N_FINE` points) and, with
flat priors in Y and log theta, the reported values are the posterior means and standard
deviations (as PSZ2's ``Y5R500``, ``Y5R500_ERR``): the grid maximum, which picks the theta
where the noise is up, is not used. ``SNR`` is the largest filter S/N over the interpolated
theta (the detection S/N at the position). The prior spans the configured theta500 grid: a
cluster larger (smaller) than its last (first) size has THETA500 piled at that end.

The position error: near the peak the filtered signal has the shape of the filter's output
autocorrelation, whose curvature is the signal-weighted mean ``<q^2>`` of the filter
(``PatchResult.q2``); the 1-sigma error per coordinate is then
``1 / (2 pi SNR sqrt(<q^2> / 2))`` arcmin (for a Gaussian beam of width s: sqrt(2) s / SNR).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table
from scipy.interpolate import PchipInterpolator
from threadpoolctl import threadpool_limits

from skydetect.clusters.mmf.filter import filter_patches
from skydetect.clusters.mmf.noise import apodisation_window
from skydetect.clusters.mmf.sampling import PatchGrid, clean_data, sample_tile
from skydetect.clusters.mmf.tile import PATCH_BATCH, MMFConfig
from skydetect.geometry import projection, tiles
from skydetect.sky.instrument import channel

N_FINE = 200  # interpolated theta500 points of the likelihood
COLUMNS = ("SNR", "Y5R500", "Y5R500_ERR", "THETA500", "THETA500_ERR", "POS_ERR")
UNITS = {"Y5R500": "arcmin2", "Y5R500_ERR": "arcmin2", "THETA500": "arcmin",
         "THETA500_ERR": "arcmin", "POS_ERR": "arcmin"}  # fmt: skip


@dataclass
class FilterOutputs:
    """The filter at the candidates' pixels: ``y_hat``, ``sigma`` (N, T) arcmin^2 and ``q2``
    (N, T) cycles^2/arcmin^2, per theta500 (T,) arcmin; rows of NaN where not measured."""

    theta500: np.ndarray
    y_hat: np.ndarray
    sigma: np.ndarray
    q2: np.ndarray


def fit_y_theta(out: FilterOutputs, n_fine: int = N_FINE) -> dict[str, np.ndarray]:
    """The continuous Y-theta fit of every row (module docstring): ``COLUMNS`` -> (N,)."""
    th = np.asarray(out.theta500, float)
    n = len(out.y_hat)
    res = {c: np.full(n, np.nan) for c in COLUMNS}
    ok = np.isfinite(out.y_hat).all(axis=1) & (out.sigma > 0).all(axis=1)
    if not ok.any():
        return res
    y, s, q2 = out.y_hat[ok], out.sigma[ok], out.q2[ok]
    if len(th) > 1:
        lt = np.log(th)
        fine = np.linspace(lt[0], lt[-1], n_fine)
        th_f = np.exp(fine)
        y = PchipInterpolator(lt, y, axis=1)(fine)
        s = np.exp(PchipInterpolator(lt, np.log(s), axis=1)(fine))
        q2 = np.exp(PchipInterpolator(lt, np.log(q2), axis=1)(fine))
    else:
        th_f = th
    snr = y / s
    logw = 0.5 * snr**2 + np.log(s)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    y_mean = np.sum(w * y, axis=1)
    y_var = np.sum(w * (s**2 + y**2), axis=1) - y_mean**2
    th_mean = w @ th_f
    th_var = w @ th_f**2 - th_mean**2
    q2_mean = np.sum(w * q2, axis=1)
    best = snr.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.where(best > 0, 1.0 / (2 * np.pi * best * np.sqrt(q2_mean / 2.0)), np.nan)
    vals = {"SNR": best, "Y5R500": y_mean, "Y5R500_ERR": np.sqrt(np.maximum(y_var, 0)),
            "THETA500": th_mean, "THETA500_ERR": np.sqrt(np.maximum(th_var, 0)),
            "POS_ERR": pos}  # fmt: skip
    for c in COLUMNS:
        res[c][ok] = vals[c]
    return res


def measure_patches(maps, windows, iy, ix, cfg: MMFConfig, pixwin_nside=None, workers=None):
    """:class:`FilterOutputs` of patches ``maps`` (N, B, S, S) (``cfg.bands``), with weights
    ``windows`` (N, S, S), at pixels (``iy``, ``ix``) (N,) of each."""
    thetas = np.asarray(cfg.theta500_arcmin, float)
    n = len(maps)
    outs = FilterOutputs(thetas, *(np.full((n, len(thetas)), np.nan) for _ in range(3)))
    if n == 0:
        return outs
    results = filter_patches(
        maps,
        cfg.pixel_arcmin,
        [channel(b).fwhm_arcmin for b in cfg.bands],
        [channel(b).tsz_per_y for b in cfg.bands],
        thetas,
        windows=windows,
        pixwin_nside=pixwin_nside,
        profile=cfg.profile,
        truncation=cfg.truncation_r500,
        min_modes=cfg.spectrum_min_modes,
        smooth_bins=cfg.spectrum_smooth_bins,
        subtract_snr=cfg.subtract_snr,
        workers=workers,
    )
    for i, r in enumerate(results):
        outs.sigma[i] = r.sigma
        outs.y_hat[i] = r.snr[:, iy[i], ix[i]] * r.sigma
        outs.q2[i] = r.q2
    return outs


def forced_photometry(tile: tiles.Tile, glon, glat, cfg: MMFConfig, workers=None) -> dict:
    """Forced photometry of positions (``glon``, ``glat``) (deg) in ``tile`` (its maps with
    margin): :func:`fit_y_theta` of the filter outputs; rows NaN where more than
    ``cfg.max_invalid_fraction`` of the patch is outside the tile file or invalid."""
    cfg.validate()
    glon, glat = np.atleast_1d(np.asarray(glon, float)), np.atleast_1d(np.asarray(glat, float))
    n = len(glon)
    thetas = np.asarray(cfg.theta500_arcmin, float)
    outs = FilterOutputs(thetas, *(np.full((n, len(thetas)), np.nan) for _ in range(3)))
    size, step = cfg.patch_size, cfg.pixel_arcmin / 60.0
    clean, good = clean_data(np.stack([tile.maps[b] for b in cfg.bands], axis=-1))
    lut = np.full(int(tile.pixels[-1] - tile.pixels[0]) + 1, -1, dtype=np.int32)
    lut[tile.pixels - tile.pixels[0]] = np.arange(len(tile.pixels), dtype=np.int32)
    grid = PatchGrid(size, cfg.pixel_arcmin)
    apod = apodisation_window(size, cfg.apodisation_px)
    # centres half a pixel off, so that the candidate lies on pixel (S/2, S/2) of an even patch
    half = 0.5 * ((size + 1) % 2)
    clon, clat = projection.offset_lonlat(glon, glat, half * step, -half * step)
    bases = grid.bases(np.atleast_1d(clon), np.atleast_1d(clat))
    vec = projection.lonlat_to_vec(glon, glat).reshape(n, 3)
    with threadpool_limits(limits=1, user_api="blas"):
        for s0 in range(0, n, PATCH_BATCH):
            ics = np.arange(s0, min(s0 + PATCH_BATCH, n))
            vals, valid = sample_tile(tile, clean, good, grid.vectors(bases[ics]), lut)
            use = (~valid).mean(axis=(1, 2)) <= cfg.max_invalid_fraction
            if not use.any():
                continue
            pix = np.array([grid.pixel_of(vec[i : i + 1], bases[i]) for i in ics[use]])[..., 0]
            got = measure_patches(
                vals[use], apod * valid[use], pix[:, 0], pix[:, 1], cfg,
                tile.nside if cfg.pixel_window else None, workers,
            )  # fmt: skip
            for name in ("y_hat", "sigma", "q2"):
                getattr(outs, name)[ics[use]] = getattr(got, name)
    return fit_y_theta(outs)


def tile_photometry(candidates, tile: tiles.Tile, cfg: MMFConfig, workers=None):
    """Table ``ID GLON GLAT`` + :data:`COLUMNS` (with units) of the ``candidates`` (``ID GLON
    GLAT``) whose position lies in ``tile``, measured by :func:`forced_photometry`."""
    for col in ("ID", "GLON", "GLAT"):
        if col not in candidates.colnames:
            raise ValueError(f"candidates: no column {col!r} (columns: {candidates.colnames})")
    glon = np.asarray(candidates["GLON"], float)
    glat = np.asarray(candidates["GLAT"], float)
    mine = np.asarray(tiles.tile_of(glon, glat)) == tile.tile
    fit = forced_photometry(tile, glon[mine], glat[mine], cfg, workers) if mine.any() else {
        c: np.zeros(0) for c in COLUMNS
    }  # fmt: skip
    out = Table({"ID": np.asarray(candidates["ID"], np.int64)[mine], "GLON": glon[mine],
                 "GLAT": glat[mine]})  # fmt: skip
    for col in COLUMNS:
        out[col] = np.asarray(fit[col], float)
        out[col].unit = UNITS.get(col)
    out["GLON"].unit = out["GLAT"].unit = "deg"
    return out
