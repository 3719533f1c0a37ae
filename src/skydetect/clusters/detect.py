"""Cluster detections from a per-tile HEALPix probability map.

The reference criteria, with every number a parameter:

* a pixel is a candidate when its (patch-averaged) probability is above ``threshold``
  (reference 0.9);
* candidate pixels are grouped into regions by connected components on the HEALPix
  neighbour graph (8 neighbours, :func:`healpy.get_all_neighbours`), so a cluster that was
  seen by several overlapping patches is one region of one map, hence one detection;
* a region needs at least ``min_pixels`` pixels (reference 3);
* its centre is the barycentre of the pixel unit vectors on the sphere, weighted by the
  probability (``centre="weighted"``) or not (``centre="plain"``);
* its radius is the largest angular distance, on the sky, from the centre to a pixel centre
  of the region (arcmin; the reference measured it in pixels). A region whose radius exceeds
  ``max_radius_arcmin`` (reference 15') is either dropped (``oversize="reject"``) or split
  (``oversize="split"``): the threshold is raised inside that region, halving the distance to
  1 at each step (0.9 -> 0.95 -> 0.975 ...), until its sub-regions satisfy the radius cap or
  ``max_split_depth`` steps are done; sub-regions still too large, or smaller than
  ``min_pixels``, are dropped.

Regions may reach into the tile's margin (the prediction map covers every pixel that a
cover patch saw); a region is kept only if its centre lies in the tile itself, so a
cluster on a tile border is detected exactly once over the sky.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import healpy as hp
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from skydetect.io.atomic import atomic_path
from skydetect.schema import schema_defaults

log = logging.getLogger(__name__)

DETECTION_COLUMNS = [
    "GLON",
    "GLAT",
    "RA",
    "DEC",
    "PEAK_PROB",
    "MEAN_PROB",
    "AREA_ARCMIN2",
    "RADIUS_ARCMIN",
    "NPIX",
    "TILE",
]
CENTRES = ("weighted", "plain")
OVERSIZE = ("reject", "split")
_DEFAULTS = schema_defaults("clusters.detect")


@dataclass(frozen=True)
class DetectParams:
    """Detection criteria (config ``clusters.detect``)."""

    threshold: float = _DEFAULTS["threshold"]
    min_pixels: int = _DEFAULTS["min_pixels"]
    max_radius_arcmin: float = _DEFAULTS["max_radius_arcmin"]
    centre: str = _DEFAULTS["centre"]
    oversize: str = _DEFAULTS["oversize"]
    max_split_depth: int = _DEFAULTS["max_split_depth"]

    def __post_init__(self):
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"clusters.detect.threshold must be in [0, 1), got {self.threshold}")
        if self.min_pixels < 1:
            raise ValueError(f"clusters.detect.min_pixels must be >= 1, got {self.min_pixels}")
        if self.max_radius_arcmin <= 0:
            raise ValueError(
                f"clusters.detect.max_radius_arcmin must be > 0, got {self.max_radius_arcmin}"
            )
        if self.centre not in CENTRES:
            raise ValueError(
                f"clusters.detect.centre must be one of {CENTRES}, got {self.centre!r}"
            )
        if self.oversize not in OVERSIZE:
            raise ValueError(
                f"clusters.detect.oversize must be one of {OVERSIZE}, got {self.oversize!r}"
            )


def connected_regions(pixels: np.ndarray, nside: int, selected: np.ndarray) -> list[np.ndarray]:
    """Group the selected pixels into regions of HEALPix neighbours (8-connectivity, RING).

    ``pixels`` are unique RING indices (any order); ``selected`` a boolean mask over them.
    Returns a list of index arrays into ``pixels``, one per region.
    """
    pixels = np.asarray(pixels, dtype=np.int64)
    sel = np.flatnonzero(selected)
    if sel.size == 0:
        return []
    order = np.argsort(pixels[sel], kind="stable")
    sel = sel[order]
    selpix = pixels[sel]
    nb = hp.get_all_neighbours(nside, selpix)  # (8, M), -1 where a neighbour does not exist
    pos = np.clip(np.searchsorted(selpix, nb), 0, selpix.size - 1)
    linked = (nb >= 0) & (selpix[pos] == nb)
    rows = np.broadcast_to(np.arange(selpix.size), nb.shape)[linked]
    cols = pos[linked]
    graph = coo_matrix(
        (np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(selpix.size, selpix.size)
    )
    _, labels = connected_components(graph, directed=False)
    order = np.argsort(labels, kind="stable")
    splits = np.flatnonzero(np.diff(labels[order])) + 1
    return [sel[g] for g in np.split(order, splits)]


def _region_geometry(vec: np.ndarray, weights: np.ndarray | None):
    """Barycentre (unit vector) of unit vectors ``vec`` (n, 3) and max distance (arcmin)."""
    centre = np.average(vec, axis=0, weights=weights)
    norm = np.linalg.norm(centre)
    if norm == 0:  # antipodal pixels: cannot happen for a connected region of a tile
        raise ValueError("degenerate region: its barycentre is the centre of the sphere")
    centre /= norm
    cosang = np.clip(vec @ centre, -1.0, 1.0)
    radius = np.degrees(np.arccos(cosang.min())) * 60.0
    return centre, radius


def _measure(region, pixels, prob, vec, nside, p: DetectParams, threshold, depth):
    """Yield (index array, centre vector, radius) of the accepted (sub-)regions."""
    if region.size < p.min_pixels:
        return
    weights = prob[region] if p.centre == "weighted" else None
    centre, radius = _region_geometry(vec[region], weights)
    if radius <= p.max_radius_arcmin:
        yield region, centre, radius
        return
    if p.oversize == "reject" or depth >= p.max_split_depth:
        log.info(
            "dropped a region of %d pixels: radius %.1f' > %.1f'",
            region.size,
            radius,
            p.max_radius_arcmin,
        )
        return
    higher = threshold + 0.5 * (1.0 - threshold)
    mask = np.zeros(pixels.size, dtype=bool)
    mask[region] = prob[region] > higher
    for sub in connected_regions(pixels, nside, mask):
        yield from _measure(sub, pixels, prob, vec, nside, p, higher, depth + 1)


def find_detections(
    pixels: np.ndarray,
    prob: np.ndarray,
    nside: int,
    params: DetectParams | None = None,
    tile: int | None = None,
) -> Table:
    """Detections in a probability map given on the RING pixels ``pixels`` at ``nside``.

    When ``tile`` is given, only regions whose centre lies in that nside-2 RING tile are kept
    (and the TILE column holds it; otherwise TILE is the tile of each centre).
    Returns a table with the columns of :data:`DETECTION_COLUMNS`, with units.
    """
    p = params or DetectParams()
    pixels = np.asarray(pixels, dtype=np.int64)
    prob = np.asarray(prob, dtype=np.float64)
    if pixels.shape != prob.shape or pixels.ndim != 1:
        raise ValueError(f"pixels {pixels.shape} and prob {prob.shape} must be equal 1-d shapes")
    if pixels.size and np.any(np.diff(np.sort(pixels)) == 0):  # (np.unique hashes: slow)
        raise ValueError("pixels must be unique (one probability per HEALPix pixel)")
    if pixels.size and (pixels.min() < 0 or pixels.max() >= hp.nside2npix(nside)):
        raise ValueError(f"pixel indices out of range for nside {nside}")
    finite = np.isfinite(prob)
    vec = np.stack(hp.pix2vec(nside, pixels), axis=-1) if pixels.size else np.zeros((0, 3))
    found = []
    for region in connected_regions(pixels, nside, finite & (prob > p.threshold)):
        found.extend(_measure(region, pixels, prob, vec, nside, p, p.threshold, 0))

    pixarea = hp.nside2pixarea(nside, degrees=True) * 3600.0
    rows = []
    for region, centre, radius in found:
        glon, glat = hp.vec2ang(centre, lonlat=True)
        rows.append(
            (
                float(glon[0]) % 360.0,
                float(glat[0]),
                float(prob[region].max()),
                float(prob[region].mean()),
                region.size * pixarea,
                radius,
                region.size,
            )
        )
    table = empty_table()
    if rows:
        glon, glat, peak, mean, area, radius, npix = map(np.array, zip(*rows, strict=True))
        centre_tile = hp.ang2pix(2, glon, glat, lonlat=True)
        keep = np.ones(glon.size, bool) if tile is None else centre_tile == tile
        icrs = SkyCoord(glon * u.deg, glat * u.deg, frame="galactic").icrs
        table = Table(
            {
                "GLON": glon[keep],
                "GLAT": glat[keep],
                "RA": icrs.ra.deg[keep],
                "DEC": icrs.dec.deg[keep],
                "PEAK_PROB": peak[keep],
                "MEAN_PROB": mean[keep],
                "AREA_ARCMIN2": area[keep],
                "RADIUS_ARCMIN": radius[keep],
                "NPIX": npix[keep].astype(np.int64),
                "TILE": centre_tile[keep].astype(np.int16),
            }
        )
        set_units(table)
        order = np.argsort(-table["PEAK_PROB"], kind="stable")
        table = table[order]
    table.meta.update(
        {
            "nside": int(nside),
            "threshold": p.threshold,
            "min_pixels": p.min_pixels,
            "max_radius_arcmin": p.max_radius_arcmin,
            "centre": p.centre,
            "oversize": p.oversize,
        }
    )
    if tile is not None:
        table.meta["tile"] = int(tile)
    return table


def set_units(table: Table) -> None:
    """Set the units of the detection columns (deg, arcmin, arcmin^2) in place."""
    for name in ("GLON", "GLAT", "RA", "DEC"):
        table[name].unit = u.deg
    table["AREA_ARCMIN2"].unit = u.arcmin**2
    table["RADIUS_ARCMIN"].unit = u.arcmin


def empty_table() -> Table:
    """A detection table with no rows: the columns, dtypes and units of a real one."""
    dtypes = [float] * 8 + [np.int64, np.int16]
    table = Table(names=DETECTION_COLUMNS, dtype=dtypes)
    set_units(table)
    return table


def write_table_atomic(table: Table, path, format: str | None = None) -> None:
    """Write ``table`` to ``path`` through a temporary file in the same directory."""
    path = Path(path)
    # .csv files are comma-separated ECSV: a plain CSV after its '#' header, with units
    fmt, kwargs = {
        ".ecsv": ("ascii.ecsv", {}),
        ".csv": ("ascii.ecsv", {"delimiter": ","}),
        ".fits": ("fits", {}),
    }.get(path.suffix, (format, {}))
    if format is not None:
        fmt = format
    if fmt is None:
        raise ValueError(f"cannot infer the table format of {path}")
    with atomic_path(path) as tmp:
        table.write(tmp, format=fmt, overwrite=True, **kwargs)


def read_detections(path) -> Table:
    """Read a per-tile detection file, checking the columns of the documented format."""
    table = Table.read(path, format="ascii.ecsv")
    missing = [c for c in DETECTION_COLUMNS if c not in table.colnames]
    if missing:
        raise ValueError(f"{path}: missing detection column(s) {', '.join(missing)}")
    return table
