"""Cross-match of cluster detections with known clusters and IR/radio sources.

* Known clusters (PSZ2- and MCXC-like catalogues, in that order of precedence): a detection
  within ``cluster_radius_arcmin`` (reference 7') of a catalogue cluster is "known". The match
  is one-to-one per catalogue, greedy by separation (closest pairs first), with astropy's
  :func:`~astropy.coordinates.search_around_sky`; a detection takes the name of the first
  catalogue that matched it.
* IR/radio compact sources, from one catalogue or the union of several (e.g. the PCCS2 lists
  of several channels and the IRAS PSC): a detection within ``source_radius_arcmin``
  (reference 5') of a source is flagged (``IR_FLAG``): it may be a dusty galaxy or a radio
  source rather than a cluster. ``IR_SOURCE`` is the ID of the nearest source and
  ``IR_CATALOG`` names the catalogue(s) with a source within the radius, nearest first. A
  flag is not an identification, so one source may flag two detections.
* ``CLASS`` is ``known`` (matched to a known cluster), ``spurious`` (not known and flagged:
  possibly spurious) or ``new`` (a candidate new cluster).
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, match_coordinates_sky, search_around_sky
from astropy.table import Table, vstack

from skydetect.clusters.detect import DETECTION_COLUMNS, empty_table

CLASSES = ("known", "new", "spurious")
# detection column -> candidate column
_RENAME = {"AREA_ARCMIN2": "AREA", "RADIUS_ARCMIN": "RADIUS"}


def galactic(table: Table, lon: str = "GLON", lat: str = "GLAT", what: str = "table") -> SkyCoord:
    """SkyCoord of a table's Galactic columns, with an error naming a missing column."""
    for col in (lon, lat):
        if col not in table.colnames:
            raise ValueError(f"{what}: no column {col!r} (columns: {', '.join(table.colnames)})")
    return SkyCoord(
        np.asarray(table[lon], dtype=float), np.asarray(table[lat], dtype=float),
        unit="deg", frame="galactic",
    )  # fmt: skip


def greedy_match(
    coords: SkyCoord, catalog: SkyCoord, radius_arcmin: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one match of ``coords`` to ``catalog``, closest pairs first.

    ``radius_arcmin`` is a scalar or one radius per catalogue object. Returns, for every
    object of ``coords``, the index of its catalogue match (-1 if none) and the separation in
    arcmin (NaN if none).
    """
    idx = np.full(len(coords), -1, dtype=np.int64)
    sep = np.full(len(coords), np.nan)
    if len(coords) == 0 or len(catalog) == 0:
        return idx, sep
    radius = np.broadcast_to(np.asarray(radius_arcmin, dtype=float), (len(catalog),))
    i, j, d, _ = search_around_sky(coords, catalog, radius.max() * u.arcmin)
    d = d.to_value(u.arcmin)
    ok = d <= radius[j]
    i, j, d = i[ok], j[ok], d[ok]
    used = np.zeros(len(catalog), dtype=bool)
    for k in np.lexsort((j, i, d)):  # by separation (ties: by index, deterministic)
        if idx[i[k]] < 0 and not used[j[k]]:
            idx[i[k]] = j[k]
            sep[i[k]] = d[k]
            used[j[k]] = True
    return idx, sep


def known_catalog(table: Table, name_column: str, what: str) -> Table:
    """A known-cluster catalogue reduced to NAME GLON GLAT (names as str)."""
    if name_column not in table.colnames:
        raise ValueError(f"{what}: no name column {name_column!r}")
    coords = galactic(table, what=what)
    names = [str(n).strip() for n in np.asarray(table[name_column])]
    return Table({"NAME": names, "GLON": coords.l.deg, "GLAT": coords.b.deg})


def concat_detections(tables: list[Table]) -> Table:
    """Stack per-tile detection tables (empty ones included) keeping units and extra columns."""
    tables = [t for t in tables if len(t)] or [empty_table()]
    return vstack(tables, metadata_conflicts="silent")


def source_union(sources: Table | dict[str, Table] | None) -> Table:
    """``ID GLON GLAT CATALOG`` of every source of one table or of a dict label -> table
    (``CATALOG`` is the label; a single table's is its ``meta["CATALOG"]``, else ``sources``)."""
    if sources is None:
        sources = {}
    elif isinstance(sources, Table):
        sources = {str(sources.meta.get("CATALOG", "sources")): sources}
    parts = []
    for label, table in sources.items():
        coords = galactic(table, what=f"sources {label}")
        parts.append(
            Table(
                {
                    "ID": np.asarray(table["ID"]).astype(str),
                    "GLON": coords.l.deg,
                    "GLAT": coords.b.deg,
                    "CATALOG": np.full(len(table), label).astype(str),
                }
            )
        )
    parts = [t for t in parts if len(t)]
    if not parts:
        return Table({"ID": [], "GLON": [], "GLAT": [], "CATALOG": []}, dtype=["U1", float, float, "U1"])
    return vstack(parts, metadata_conflicts="silent")


def _flag_sources(cand: Table, coords: SkyCoord, sources: Table, radius_arcmin: float) -> None:
    """IR_SEP_ARCMIN, IR_FLAG, IR_SOURCE and IR_CATALOG of the candidates (module docstring)."""
    n = len(cand)
    ir_sep = np.full(n, np.nan)
    source_id = np.full(n, "", dtype=object)
    catalogs = np.full(n, "", dtype=object)
    if len(sources) and n:
        src = galactic(sources, what="sources")
        _, d, _ = match_coordinates_sky(coords, src)
        ir_sep = d.to_value(u.arcmin)
        i, j, d, _ = search_around_sky(coords, src, radius_arcmin * u.arcmin)
        names = np.asarray(sources["CATALOG"], dtype=str)
        ids = np.asarray(sources["ID"], dtype=str)
        for det in np.unique(i):
            near = np.flatnonzero(i == det)
            near = near[np.argsort(d[near].to_value(u.arcmin), kind="stable")]
            source_id[det] = ids[j[near[0]]]
            catalogs[det] = ",".join(dict.fromkeys(names[j[near]]))
    cand["IR_SEP_ARCMIN"] = ir_sep * u.arcmin
    cand["IR_FLAG"] = np.nan_to_num(ir_sep, nan=np.inf) <= radius_arcmin
    cand["IR_SOURCE"] = source_id.astype(str) if n else np.array([], dtype="U1")
    cand["IR_CATALOG"] = catalogs.astype(str) if n else np.array([], dtype="U1")


def crossmatch(
    detections: Table,
    known: dict[str, Table],
    sources: Table | dict[str, Table] | None,
    cluster_radius_arcmin: float = 7.0,
    source_radius_arcmin: float = 5.0,
) -> Table:
    """The candidate catalogue of ``detections`` (see the module docstring).

    ``known`` maps a catalogue label (e.g. ``"PSZ2"``) to a table with NAME GLON GLAT, in
    order of precedence; ``sources`` is one IR/radio source table (ID GLON GLAT) or a dict
    label -> table of several, flagged against their union. Extra detection columns (e.g. the MMF's SNR THETA500 Y5R500) are kept.
    """
    missing = [c for c in DETECTION_COLUMNS if c not in detections.colnames]
    if missing:
        raise ValueError(f"detections: missing column(s) {', '.join(missing)}")
    n = len(detections)
    cand = Table()
    cand["ID"] = np.arange(1, n + 1, dtype=np.int64)
    for col in detections.colnames:
        if col in ("NPIX",):
            continue
        cand[_RENAME.get(col, col)] = detections[col]
    cand["NPIX"] = detections["NPIX"]
    coords = galactic(detections, what="detections")

    name = np.full(n, "", dtype=object)
    catalog_of = np.full(n, "", dtype=object)
    sep = np.full(n, np.nan)
    for label, table in known.items():
        idx, d = greedy_match(coords, galactic(table, what=label), cluster_radius_arcmin)
        new = (idx >= 0) & (catalog_of == "")
        name[new] = np.asarray(table["NAME"], dtype=str)[idx[new]]
        catalog_of[new] = label
        sep[new] = d[new]
    cand["KNOWN_NAME"] = name.astype(str) if n else np.array([], dtype="U1")
    cand["KNOWN_CATALOG"] = catalog_of.astype(str) if n else np.array([], dtype="U1")
    cand["KNOWN_SEP_ARCMIN"] = sep * u.arcmin

    union = source_union(sources)
    _flag_sources(cand, coords, union, source_radius_arcmin)
    cls = np.where(
        cand["KNOWN_CATALOG"] != "", "known", np.where(cand["IR_FLAG"], "spurious", "new")
    )
    cand["CLASS"] = cls.astype("U8")
    cand.meta.update(
        {
            "CL_RAD": float(cluster_radius_arcmin),  # arcmin
            "SRC_RAD": float(source_radius_arcmin),  # arcmin
            "KNOWNCAT": ",".join(known) or "none",
            "SRCCAT": ",".join(dict.fromkeys(np.asarray(union["CATALOG"], str))) or "none",
        }
    )
    return cand


def class_counts(candidates: Table) -> dict[str, int]:
    """Number of candidates per CLASS."""
    return {c: int(np.sum(candidates["CLASS"] == c)) for c in CLASSES}


def catalogue_difference(a: Table, b: Table, radius_arcmin: float = 2.0, score="PEAK_PROB"):
    """How two candidate catalogues of the same sky differ (e.g. two seeded runs on different
    CPUs): one-to-one positional match within ``radius_arcmin``; returns the counts, the
    fraction of candidates without a partner, the largest separation and the largest score
    difference of the matched pairs."""
    idx, sep = greedy_match(galactic(a, what="first"), galactic(b, what="second"), radius_arcmin)
    ok = idx >= 0
    n_a, n_b, n = len(a), len(b), int(ok.sum())
    ds = np.abs(np.asarray(a[score], float)[ok] - np.asarray(b[score], float)[idx[ok]])
    return {
        "n_first": n_a,
        "n_second": n_b,
        "n_matched": n,
        "unmatched_fraction": (n_a + n_b - 2 * n) / max(n_a + n_b, 1),
        "max_sep_arcmin": float(np.max(sep[ok])) if n else 0.0,
        "max_score_diff": float(np.max(ds)) if n else 0.0,
    }
