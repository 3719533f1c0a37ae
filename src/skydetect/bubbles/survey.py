"""The whole-plane bubble catalogue: per-field detections merged across overlapping fields.

Real GLIMPSE/MIPSGAL tiles overlap (3.1° wide every 3° in l), so a bubble near a tile edge
is detected twice. :func:`merge_fields` removes these duplicates by non-maximum suppression
in sky coordinates: a detection's footprint is its box, a square of side ``SIZE_ARCMIN``
about (GLON, GLAT), measured on the tangent plane of the higher-scoring detection; a lower
score box whose IoU with a kept one reaches ``merge_iou`` is dropped (pairs found with
``astropy.coordinates.search_around_sky``).

The catalogue (``results/bubbles/survey/{run}/catalog.fits`` / ``.csv``) has the columns
``GLON GLAT`` [deg], ``MajAxis MinAxis`` [arcmin] (box half-sides / ``box_scale``, the
inverse of the training boxes of ±box_scale·MajAxis), ``angle`` [deg] (0: boxes are aligned
with l and b), ``score``, ``field``, the nearest MWP bubble ``MWP`` and its ``separation``
[arcmin], and ``STATUS``: ``KNOWN`` when that separation is at most ``match_factor`` ×
MajAxis of the detection or of the MWP bubble, else ``NEW``; then the detection's data
coverage ``COVER_24 FILLED POOR_COVER`` (:mod:`skydetect.bubbles.coverage`).
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack

from skydetect.io.spitzer import wrap_glon
from skydetect.schema import schema_defaults

from .catalog import BOX_SCALE
from .coverage import COVERAGE_COLUMNS

GLIMPSE_STEP_DEG = 3.0  # GLIMPSE / MIPSGAL tile centres every 3° in l
_MATCH_FACTOR = schema_defaults("bubbles.survey")["match_factor"]


def survey_longitudes(fields=None, lmin: float = 1.0, lmax: float = 65.0) -> list[float]:
    """Field centre longitudes (0-360) of the survey: ``fields`` as given, or (``None``)
    every GLIMPSE/MIPSGAL tile (centres every 3°, 3° wide) touching lmin ≤ |l| ≤ lmax."""
    if fields is not None:
        return [float(f) for f in fields]
    half = GLIMPSE_STEP_DEG / 2
    kmax = int(np.floor((lmax + half) / GLIMPSE_STEP_DEG))
    out = []
    for k in range(-kmax, kmax + 1):
        lc = k * GLIMPSE_STEP_DEG
        lo, hi = abs(lc) - half, abs(lc) + half  # |l| range of the tile (lc != 0)
        if lc == 0:
            lo, hi = 0.0, half
        if hi > lmin and lo < lmax:
            out.append(float(np.mod(lc, 360.0)))
    return sorted(out)


def _iou_sky(c_keep: SkyCoord, side_keep, c_other: SkyCoord, side_other) -> np.ndarray:
    """IoU of squares (sides in arcmin) about two sets of centres, on the keep's tangent plane."""
    off = c_keep.spherical_offsets_to(c_other)
    dx = np.abs(off[0].to_value(u.arcmin))
    dy = np.abs(off[1].to_value(u.arcmin))
    a, b = np.asarray(side_keep, float), np.asarray(side_other, float)
    ix = np.clip((a + b) / 2 - dx, 0, None)
    ix = np.minimum(ix, np.minimum(a, b))
    iy = np.clip((a + b) / 2 - dy, 0, None)
    iy = np.minimum(iy, np.minimum(a, b))
    inter = ix * iy
    return inter / (a * a + b * b - inter)


def sky_nms(glon, glat, side_arcmin, scores, merge_iou: float = 0.3) -> np.ndarray:
    """Indices of the detections kept by NMS in sky coordinates, best score first."""
    glon, glat = np.asarray(glon, float), np.asarray(glat, float)
    side = np.asarray(side_arcmin, float)
    scores = np.asarray(scores, float)
    n = len(scores)
    if n == 0:
        return np.zeros(0, int)
    coords = SkyCoord(glon * u.deg, glat * u.deg, frame="galactic")
    radius = float(side.max()) * u.arcmin  # beyond this, two squares cannot overlap
    i1, i2, _, _ = coords.search_around_sky(coords, radius)
    pairs = i1 != i2
    i1, i2 = i1[pairs], i2[pairs]
    neighbours = [[] for _ in range(n)]
    for a, b in zip(i1, i2, strict=True):
        neighbours[a].append(b)
    order = np.argsort(-scores, kind="stable")
    dropped = np.zeros(n, bool)
    keep = []
    for i in order:
        if dropped[i]:
            continue
        keep.append(i)
        nb = np.asarray([j for j in neighbours[i] if not dropped[j]], int)
        if nb.size:
            iou = _iou_sky(coords[i], side[i], coords[nb], side[nb])
            dropped[nb[iou >= merge_iou]] = True
    return np.asarray(keep, int)


def merge_fields(tables: list[Table], merge_iou: float = 0.3) -> Table:
    """Stack per-field detection tables (``detections_table`` layout) and drop duplicates
    across fields by :func:`sky_nms`; sorted by GLON."""
    parts = [t for t in tables if len(t)]
    if not parts:
        return tables[0][:0] if tables else Table()
    allt = vstack(parts, metadata_conflicts="silent")
    keep = sky_nms(allt["GLON"], allt["GLAT"], allt["SIZE_ARCMIN"], allt["SCORE"], merge_iou)
    out = allt[np.sort(keep)]
    out.sort("GLON")
    return out


def survey_catalog(
    merged: Table, mwp: Table, box_scale: float = BOX_SCALE, match_factor: float = _MATCH_FACTOR
) -> Table:
    """The survey catalogue (columns in the module docstring) from merged detections and the
    MWP catalogue (``skydetect.bubbles.catalog`` layout)."""
    n = len(merged)
    t = Table()
    t["GLON"] = np.asarray(merged["GLON"], float) * u.deg
    t["GLAT"] = np.asarray(merged["GLAT"], float) * u.deg
    w = np.asarray(merged["WIDTH_ARCMIN"], float) if n else np.zeros(0)
    h = np.asarray(merged["HEIGHT_ARCMIN"], float) if n else np.zeros(0)
    t["MajAxis"] = np.maximum(w, h) / (2 * box_scale) * u.arcmin
    t["MinAxis"] = np.minimum(w, h) / (2 * box_scale) * u.arcmin
    t["angle"] = np.zeros(n) * u.deg
    t["score"] = np.asarray(merged["SCORE"], float)
    t["field"] = np.asarray(merged["FIELD"]).astype(str) if n else np.zeros(0, "U10")
    mwp_name = np.full(n, "", dtype="U32")
    sep = np.full(n, np.nan)
    status = np.full(n, "NEW", dtype="U5")
    if n and len(mwp):
        det = SkyCoord(t["GLON"], t["GLAT"], frame="galactic")
        cat = SkyCoord(
            np.asarray(mwp["GLON"], float) * u.deg,
            np.asarray(mwp["GLAT"], float) * u.deg,
            frame="galactic",
        )
        idx, d2d, _ = det.match_to_catalog_sky(cat)
        sep = d2d.to_value(u.arcmin)
        mwp_name = np.asarray(mwp["MWP"]).astype(str)[idx]
        limit = match_factor * np.maximum(
            np.asarray(t["MajAxis"], float), np.asarray(mwp["MajAxis"], float)[idx]
        )
        status = np.where(sep <= limit, "KNOWN", "NEW")
    t["MWP"] = np.where(status == "KNOWN", mwp_name, "")
    t["separation"] = sep * u.arcmin
    t["STATUS"] = status
    for name in COVERAGE_COLUMNS:  # the detections' data coverage, where they carry it
        if name in merged.colnames:
            t[name] = np.asarray(merged[name])
    t.meta["comments"] = [
        "Bubbles detected over the survey fields (duplicates across fields removed by sky NMS)",
        f"MajAxis = box half-side / {box_scale}; KNOWN: an MWP bubble within "
        f"{match_factor} x MajAxis",
    ]
    return t


def survey_counts(catalog: Table, mwp: Table, fields: list[str], field_lon: dict) -> Table:
    """Counts per field and in total: detected, known, new, and MWP bubbles in the fields.

    ``field_lon`` maps a field to its (lmin, lmax) in (-180, 180] degrees."""
    rows = []
    mwp_l = wrap_glon(np.asarray(mwp["GLON"], float)) if len(mwp) else np.zeros(0)
    mwp_b = np.asarray(mwp["GLAT"], float) if len(mwp) else np.zeros(0)
    for f in [*fields, "all"]:
        sel = np.ones(len(catalog), bool) if f == "all" else catalog["field"] == f
        if f == "all":
            in_area = np.zeros(len(mwp_l), bool)
            for lo, hi in field_lon.values():
                in_area |= (mwp_l >= lo) & (mwp_l < hi) & (np.abs(mwp_b) <= 1.0)
        else:
            lo, hi = field_lon[f]
            in_area = (mwp_l >= lo) & (mwp_l < hi) & (np.abs(mwp_b) <= 1.0)
        st = np.asarray(catalog["STATUS"])[sel]
        rows.append(
            (
                f,
                int(sel.sum()),
                int((st == "KNOWN").sum()),
                int((st == "NEW").sum()),
                int(in_area.sum()),
            )
        )
    return Table(rows=rows, names=("field", "detected", "known", "new", "mwp_in_fields"))
