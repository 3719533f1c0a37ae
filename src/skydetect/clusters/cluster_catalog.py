"""The published cluster catalogue of a detector (a U-Net run, ``mmf`` or ``combined``).

One row per candidate of the detector's candidate table (rule crossmatch, or
combine_candidates for ``combined``), with (:data:`COLUMNS`, units in the header):

- ``NAME`` ``<prefix> GLLL.ll+BB.bb`` (Galactic coordinates rounded to 0.01 deg, longitude
  zero-padded, latitude signed as the position is, also where it rounds to 00.00);
  ``GLON GLAT RA DEC`` (ICRS from astropy), ``TILE`` (nside-2 RING tile of the position);
- the forced MMF photometry (:mod:`skydetect.clusters.mmf.photometry`) at the position:
  ``SNR``, ``Y5R500`` ``Y5R500_ERR`` (arcmin^2), ``THETA500`` ``THETA500_ERR`` and ``POS_ERR``
  (arcmin, 1 sigma per coordinate);
- ``PEAK_PROB`` (the U-Net's; NaN for MMF-only entries), ``DETECTORS`` (``unet``, ``mmf`` or,
  in ``combined``, ``both``);
- ``P_REAL`` (the calibrated probability that the candidate is a cluster; NaN where not
  given);
- ``MATCH_PSZ2 MATCH_MCXC MATCH_RM``: the name of the known cluster of each catalogue within
  ``clusters.crossmatch.cluster_radius_arcmin`` (one-to-one per catalogue, closest first;
  empty if none or if the catalogue is not available); ``REDSHIFT`` and ``Z_SOURCE`` from
  the first of ``redshift_precedence`` whose match has a redshift (NaN and empty otherwise);
- ``IR_FLAG`` (:mod:`skydetect.clusters.ir_flag`), ``MASK_GAL`` ``MASK_PS`` (inside the
  Galactic / point-source masks; False where not given).
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from skydetect.clusters.crossmatch import galactic, greedy_match
from skydetect.clusters.mmf.photometry import COLUMNS as PHOT_COLUMNS
from skydetect.geometry import tiles
from skydetect.io.catalogs import PSZ2_NO_REDSHIFT

# known-cluster catalogue -> (MATCH column, Z_SOURCE label, name column, redshift column)
KNOWN = {
    "psz2": ("MATCH_PSZ2", "PSZ2", "NAME", "REDSHIFT"),
    "mcxc": ("MATCH_MCXC", "MCXC", "MCXC", "z"),
    "redmapper": ("MATCH_RM", "RM", "NAME", "Z_LAMBDA"),
}
COLUMNS = (
    "NAME", "GLON", "GLAT", "RA", "DEC", "POS_ERR", "SNR", "Y5R500", "Y5R500_ERR",
    "THETA500", "THETA500_ERR", "PEAK_PROB", "DETECTORS", "P_REAL", "REDSHIFT", "Z_SOURCE",
    "MATCH_PSZ2", "MATCH_MCXC", "MATCH_RM", "IR_FLAG", "MASK_GAL", "MASK_PS", "TILE",
)  # fmt: skip
UNITS = {"GLON": u.deg, "GLAT": u.deg, "RA": u.deg, "DEC": u.deg, "POS_ERR": u.arcmin,
         "Y5R500": u.arcmin**2, "Y5R500_ERR": u.arcmin**2, "THETA500": u.arcmin,
         "THETA500_ERR": u.arcmin}  # fmt: skip
DESCRIPTIONS = {
    "NAME": "SKYD-style name from the Galactic position (rounded to 0.01 deg)",
    "POS_ERR": "1-sigma position error per coordinate (MMF S/N peak curvature)",
    "SNR": "forced MMF S/N at the position (best theta500)",
    "Y5R500": "forced MMF Y5R500: mean of the marginal Y-theta posterior",
    "Y5R500_ERR": "standard deviation of the marginal Y5R500 posterior",
    "THETA500": "mean of the marginal theta500 posterior",
    "THETA500_ERR": "standard deviation of the marginal theta500 posterior",
    "PEAK_PROB": "U-Net peak probability (NaN for MMF-only entries)",
    "DETECTORS": "detector(s) that found the candidate: unet, mmf or both",
    "P_REAL": "calibrated probability of a real cluster (NaN: not calibrated)",
    "REDSHIFT": "redshift of the matched known cluster (NaN: none)",
    "Z_SOURCE": "catalogue of REDSHIFT: PSZ2, MCXC or RM",
    "MATCH_PSZ2": "matched PSZ2 cluster",
    "MATCH_MCXC": "matched MCXC cluster",
    "MATCH_RM": "matched redMaPPer cluster",
    "IR_FLAG": "a bright IR source lies within the flag radius",
    "MASK_GAL": "inside the Galactic mask",
    "MASK_PS": "inside the point-source mask",
    "TILE": "HEALPix nside-2 RING tile of the position",
}


class CatalogBuildError(ValueError):
    """Bad input to the catalogue builder (the message names the column or argument)."""


def cluster_names(glon, glat, prefix: str = "SKYD") -> np.ndarray:
    """``<prefix> GLLL.ll+BB.bb`` of each position: rounded to 0.01 deg (Python's format
    rounding), 360.00 wraps to 000.00, the latitude's sign that of the position (``-00.00``
    just south of the plane)."""
    lon = np.atleast_1d(np.mod(np.asarray(glon, float), 360.0))
    lat = np.atleast_1d(np.asarray(glat, float))
    names = []
    for lo, b in zip(lon, lat, strict=True):
        glon_txt = f"{lo:06.2f}"
        glon_txt = "000.00" if glon_txt == "360.00" else glon_txt
        names.append(f"{prefix} G{glon_txt}{'-' if b < 0 else '+'}{abs(b):05.2f}")
    return np.array(names, dtype=str)


def known_table(name: str, table: Table) -> Table:
    """``NAME GLON GLAT Z`` of known-cluster catalogue ``name`` (as read by
    :func:`skydetect.io.catalogs.read_catalog`); Z NaN where unknown (PSZ2's -1, z <= 0)."""
    if name not in KNOWN:
        raise CatalogBuildError(f"unknown known-cluster catalogue {name!r}: expected one of {list(KNOWN)}")
    _, _, name_col, z_col = KNOWN[name]
    if "GLON" in table.colnames:
        coords = galactic(table, what=name)
    else:  # redMaPPer: RA/DEC only
        coords = SkyCoord(np.asarray(table["RA"], float), np.asarray(table["DEC"], float),
                          unit="deg", frame="icrs").galactic  # fmt: skip
    z = np.asarray(table[z_col], float)
    z = np.where((z == PSZ2_NO_REDSHIFT) | ~(z > 0), np.nan, z)
    names = np.char.strip(np.asarray(table[name_col]).astype(str))
    return Table({"NAME": names, "GLON": coords.l.deg, "GLAT": coords.b.deg, "Z": z})


def match_known(coords: SkyCoord, known: dict[str, Table], radius_arcmin: float) -> dict:
    """Per catalogue (``known``: name -> :func:`known_table`): (matched NAME or "", its Z or
    NaN) for every position; one-to-one, closest pairs first."""
    out = {}
    for name, table in known.items():
        idx, _ = greedy_match(coords, galactic(table, what=name), radius_arcmin)
        hit = idx >= 0
        names = np.full(len(coords), "", dtype=object)
        z = np.full(len(coords), np.nan)
        names[hit] = np.asarray(table["NAME"], dtype=str)[idx[hit]]
        z[hit] = np.asarray(table["Z"], float)[idx[hit]]
        out[name] = (names.astype(str) if len(coords) else np.zeros(0, "U1"), z)
    return out


def redshifts(matches: dict, precedence) -> tuple[np.ndarray, np.ndarray]:
    """(REDSHIFT, Z_SOURCE): the first catalogue of ``precedence`` whose match has a finite
    redshift; catalogues absent from ``matches`` are skipped."""
    unknown = [p for p in precedence if p not in KNOWN]
    if unknown:
        raise CatalogBuildError(
            f"clusters.cluster_catalog.redshift_precedence: unknown catalogue(s) {unknown} "
            f"(expected {list(KNOWN)})"
        )
    n = len(next(iter(matches.values()))[1]) if matches else 0
    z = np.full(n, np.nan)
    source = np.full(n, "", dtype=object)
    for name in precedence:
        if name not in matches:
            continue
        zc = matches[name][1]
        take = np.isnan(z) & np.isfinite(zc)
        z[take] = zc[take]
        source[take] = KNOWN[name][1]
    return z, source.astype("U4")


def align_photometry(candidates: Table, photometry: Table) -> dict[str, np.ndarray]:
    """The per-tile photometry rows (``ID`` + :data:`PHOT_COLUMNS`) in the order of the
    candidates' ``ID``; NaN for a candidate without a row (a duplicated ID is an error)."""
    ids = np.asarray(photometry["ID"], np.int64)
    if len(np.unique(ids)) != len(ids):
        raise CatalogBuildError("photometry: an ID appears twice (a candidate in two tiles)")
    row = {int(i): k for k, i in enumerate(ids)}
    where = np.array([row.get(int(i), -1) for i in np.asarray(candidates["ID"])], dtype=np.int64)
    out = {}
    for col in PHOT_COLUMNS:
        vals = np.asarray(photometry[col], float)
        out[col] = np.where(where >= 0, vals[np.maximum(where, 0)] if len(vals) else np.nan, np.nan)
    return out


def _optional(values, n: int, fill, dtype, what: str) -> np.ndarray:
    """``values`` as an (n,) array, or ``fill`` everywhere when None."""
    if values is None:
        return np.full(n, fill, dtype=dtype)
    arr = np.asarray(values, dtype=dtype)
    if arr.shape != (n,):
        raise CatalogBuildError(f"{what}: {arr.shape} values for {n} candidates")
    return arr


def detectors_column(candidates: Table, detector: str) -> np.ndarray:
    """``DETECTORS`` of the candidates: the combined table's own, else ``mmf`` / ``unet``."""
    n = len(candidates)
    if "DETECTORS" in candidates.colnames:
        return np.asarray(candidates["DETECTORS"], dtype=str).astype("U4")
    return np.full(n, "mmf" if detector == "mmf" else "unet", dtype="U4")


def build_catalog(
    candidates: Table,
    detector: str,
    photometry: dict[str, np.ndarray],
    matches: dict,
    ir_flag,
    precedence=("psz2", "mcxc", "redmapper"),
    p_real=None,
    mask_gal=None,
    mask_ps=None,
    prefix: str = "SKYD",
) -> Table:
    """The published catalogue (module docstring) of ``candidates`` (GLON GLAT [PEAK_PROB
    DETECTORS]), with ``photometry`` (:data:`PHOT_COLUMNS` -> (N,)), ``matches``
    (:func:`match_known`), ``ir_flag`` (N,), and the optional ``p_real`` (N,) probabilities
    (None: NaN) and ``mask_gal`` / ``mask_ps`` (N,) booleans (None: False)."""
    n = len(candidates)
    coords = galactic(candidates, what=f"{detector} candidates")
    missing = [c for c in PHOT_COLUMNS if c not in photometry]
    if missing:
        raise CatalogBuildError(f"photometry: missing {missing}")
    t = Table(meta={"DETECTOR": detector, "EXTNAME": "CLUSTERS"})
    t["NAME"] = cluster_names(coords.l.deg, coords.b.deg, prefix)
    t["GLON"], t["GLAT"] = coords.l.deg, coords.b.deg
    icrs = coords.icrs
    t["RA"], t["DEC"] = icrs.ra.deg, icrs.dec.deg
    for col in PHOT_COLUMNS:
        t[col] = _optional(photometry[col], n, np.nan, float, f"photometry {col}")
    t["PEAK_PROB"] = (
        np.asarray(candidates["PEAK_PROB"], float)
        if "PEAK_PROB" in candidates.colnames
        else np.full(n, np.nan)
    )
    t["DETECTORS"] = detectors_column(candidates, detector)
    t["P_REAL"] = _optional(p_real, n, np.nan, float, "P_REAL")
    t["REDSHIFT"], t["Z_SOURCE"] = redshifts(matches, precedence)
    for name, (col, *_) in KNOWN.items():
        t[col] = matches[name][0] if name in matches else np.full(n, "", dtype="U1")
    t["IR_FLAG"] = _optional(ir_flag, n, False, bool, "IR_FLAG")
    t["MASK_GAL"] = _optional(mask_gal, n, False, bool, "MASK_GAL")
    t["MASK_PS"] = _optional(mask_ps, n, False, bool, "MASK_PS")
    t["TILE"] = np.asarray(tiles.tile_of(coords.l.deg, coords.b.deg), dtype=np.int64)
    t = t[list(COLUMNS)]
    for col, unit in UNITS.items():
        t[col].unit = unit
    for col, text in DESCRIPTIONS.items():
        t[col].description = text
    t.meta["comments"] = [f"{c}: {DESCRIPTIONS[c]}" for c in COLUMNS if c in DESCRIPTIONS]
    return t
