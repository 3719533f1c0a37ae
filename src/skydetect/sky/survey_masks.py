"""Galactic and point-source masks of the sky, and the mask flags of sky positions.

Every mask is a RING-ordered HEALPix bool map, True where the sky is kept, False where it is
masked (the Planck convention of the published HFI masks, :mod:`skydetect.io.planck_masks`).

The mock sky writes its own masks the way the published ones were made:

- :func:`galactic_mask_from_dust`: the dust-dominated map smoothed (Gaussian, degrees), and
  the brightest ``1 - sky_fraction`` of the sky masked (the GALxxx masks threshold the
  smoothed 353 GHz intensity at fixed sky fractions). The map is first averaged down to a
  low working resolution (well below the smoothing scale), thresholded there and brought
  back up, so the kept fraction is exact to one working pixel and the job takes seconds.
- :func:`point_source_mask`: a disk of fixed radius around every source brighter than a flux
  threshold in any of the chosen bands.

:func:`mask_flags` looks positions up in both masks: ``MASK_GAL`` / ``MASK_PS`` are True where
a position falls in the masked (not kept) part; :func:`apply_mask_policy` adds them to a
candidate table and, with clusters.mask_candidates ``drop``, removes the masked rows.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
from astropy.table import Table

from skydetect.io.catalogs import read_sources
from skydetect.io.fits_maps import read_checked_map
from skydetect.io.planck_masks import read_mask_columns

# working resolution of the Galactic mask: pixels of ~55', far below a 5 deg smoothing
GALACTIC_WORK_NSIDE = 64


def galactic_mask_from_dust(
    dust_ring: np.ndarray, sky_fraction: float, smoothing_deg: float, nside_out: int | None = None
) -> np.ndarray:
    """Kept where the smoothed dust map is among the faintest ``sky_fraction`` of the sky.

    ``dust_ring``: RING map of a dust-dominated band (``hp.UNSEEN`` / NaN pixels are taken as
    bright, i.e. masked); ``nside_out``: the mask's resolution (default: the map's).
    """
    if not 0.0 < sky_fraction <= 1.0:
        raise ValueError(f"sky_fraction must lie in (0, 1], got {sky_fraction}")
    dust = np.asarray(dust_ring, dtype=np.float64)
    nside_in = hp.npix2nside(dust.size)
    nside_out = nside_in if nside_out is None else int(nside_out)
    bad = ~np.isfinite(dust) | (dust == hp.UNSEEN)
    if bad.all():
        raise ValueError("the dust map has no valid pixel")
    dust = np.where(bad, np.nanmax(np.where(bad, np.nan, dust)), dust)
    work = min(GALACTIC_WORK_NSIDE, nside_in, nside_out)
    low = hp.ud_grade(dust, work, order_in="RING", order_out="RING")
    smooth = hp.smoothing(low, fwhm=np.radians(smoothing_deg), lmax=3 * work - 1, iter=0)
    n_keep = int(round(sky_fraction * smooth.size))
    keep = np.zeros(smooth.size, dtype=bool)
    keep[np.argsort(smooth, kind="stable")[:n_keep]] = True
    if nside_out == work:
        return keep
    return hp.ud_grade(keep.astype(np.float32), nside_out, order_in="RING") > 0.5


def point_source_mask(
    nside: int, sources: Table, bands, flux_mjy: float, radius_arcmin: float
) -> np.ndarray:
    """Kept everywhere except within ``radius_arcmin`` of every source of ``sources`` (GLON
    GLAT FLUX_<band> [mJy]) brighter than ``flux_mjy`` in any of ``bands``."""
    missing = [f"FLUX_{b}" for b in bands if f"FLUX_{b}" not in sources.colnames]
    if missing:
        raise ValueError(
            f"source catalogue: columns {', '.join(missing)} missing (planck.masks."
            f"point_source_bands; columns: {', '.join(sources.colnames)})"
        )
    bright = np.zeros(len(sources), dtype=bool)
    for band in bands:
        bright |= np.nan_to_num(np.asarray(sources[f"FLUX_{band}"], float)) > flux_mjy
    keep = np.ones(hp.nside2npix(nside), dtype=bool)
    glon = np.asarray(sources["GLON"], float)[bright]
    glat = np.asarray(sources["GLAT"], float)[bright]
    vecs = hp.ang2vec(glon, glat, lonlat=True).reshape(-1, 3)
    radius = np.radians(radius_arcmin / 60.0)
    for vec in vecs:
        keep[hp.query_disc(nside, vec, radius, inclusive=False)] = False
    return keep


def survey_masks(simulated: bool, inputs: dict, cfg: dict) -> dict[str, np.ndarray]:
    """``{"galactic": keep, "point_sources": keep}`` of the configured sky (planck.masks
    ``cfg``). ``simulated``: ``inputs`` holds ``dust`` (checked map of the dust band) and
    ``sources`` (the mock's catalogue), and the masks are made at the map's resolution; else
    ``galactic`` and ``point_sources``, the published mask files, read at theirs."""
    if not simulated:
        return {
            "galactic": read_mask_columns(inputs["galactic"], cfg["galactic_columns"]),
            "point_sources": read_mask_columns(inputs["point_sources"],
                                               cfg["point_source_columns"]),
        }  # fmt: skip
    dust, info = read_checked_map(inputs["dust"])
    sources = read_sources(inputs["sources"])
    return {
        "galactic": galactic_mask_from_dust(dust, cfg["sky_fraction"], cfg["dust_smoothing_deg"]),
        "point_sources": point_source_mask(
            info["nside"], sources, [str(b) for b in cfg["point_source_bands"]],
            cfg["point_source_flux_mjy"], cfg["point_source_radius_arcmin"],
        ),
    }  # fmt: skip


def mask_flags(glon, glat, gal_mask, ps_mask) -> tuple[np.ndarray, np.ndarray]:
    """``(MASK_GAL, MASK_PS)``: bool arrays, True where (GLON, GLAT) [deg] falls in the masked
    part of the Galactic / point-source mask (RING bool maps, True = kept; any resolutions)."""
    glon = np.atleast_1d(np.asarray(glon, float))
    glat = np.atleast_1d(np.asarray(glat, float))
    if glon.shape != glat.shape:
        raise ValueError(f"glon and glat differ in shape: {glon.shape} vs {glat.shape}")
    if not (np.isfinite(glon).all() and np.isfinite(glat).all()):
        raise ValueError("glon / glat hold non-finite values")
    flags = []
    for mask in (gal_mask, ps_mask):
        mask = np.asarray(mask, dtype=bool)
        pix = hp.ang2pix(hp.npix2nside(mask.size), glon, glat, lonlat=True)
        flags.append(~mask[pix])
    return flags[0], flags[1]


MASK_POLICIES = ("flag", "drop")


def apply_mask_policy(table: Table, gal_mask, ps_mask, policy: str) -> Table:
    """``table`` (columns GLON GLAT [deg]) with bool columns ``MASK_GAL`` and ``MASK_PS``
    (:func:`mask_flags`); ``policy`` (clusters.mask_candidates) ``flag`` keeps every row,
    ``drop`` keeps only the rows outside both masks. Returns a new table."""
    if policy not in MASK_POLICIES:
        raise ValueError(
            f"clusters.mask_candidates: {policy!r}, expected one of {', '.join(MASK_POLICIES)}"
        )
    missing = [c for c in ("GLON", "GLAT") if c not in table.colnames]
    if missing:
        raise ValueError(f"candidate table: columns {', '.join(missing)} missing")
    out = table.copy()
    out["MASK_GAL"], out["MASK_PS"] = mask_flags(out["GLON"], out["GLAT"], gal_mask, ps_mask)
    if policy == "drop":
        out = out[~(out["MASK_GAL"] | out["MASK_PS"])]
    return out
