"""Training catalogues of known clusters, nested as in the reference pipeline.

Names (each adds to the one before it; the redMaPPer sets both build on ``MCXC``):

- ``planck_z``: PSZ2 union entries with a redshift (``REDSHIFT > 0``; <= 0 is unknown);
- ``planck_no-z``: all PSZ2 entries (adds those without a redshift);
- ``MCXC``: adds the MCXC clusters with no catalogue entry within ``merge_radius_arcmin``;
- ``RM30`` / ``RM50``: ``MCXC`` plus redMaPPer clusters of richness LAMBDA > 30 / > 50,
  again only those with no entry within the merge radius.

Duplicates are merged at ``merge_radius_arcmin``: an added object close to an entry already
present is dropped (the earlier catalogue wins), and within one added catalogue the first
member of a close pair is kept (never both dropped, a defect of the reference).

Output columns: ``NAME GLON GLAT Z THETA500 ORIGIN`` (``Z`` NaN if unknown, ``THETA500`` in
arcmin from M500/R500 and z with Planck18, NaN if unknown).
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.table import Table, vstack

from skydetect.geometry.tiles import tile_of
from skydetect.io.atomic import atomic_path
from skydetect.io.catalog_values import check_values
from skydetect.io.catalogs import CatalogError, read_mcxc, read_psz2, read_redmapper

__all__ = [
    "CATALOG_NAMES",
    "needed_inputs",
    "theta500_from_m500",
    "theta500_from_r500",
    "dedupe",
    "merge",
    "build_catalog",
    "write_catalog",
    "read_training_catalog",
    "check_training_coverage",
]

CATALOG_NAMES = ("planck_z", "planck_no-z", "MCXC", "RM30", "RM50")
COLUMNS = ("NAME", "GLON", "GLAT", "Z", "THETA500", "ORIGIN")


def needed_inputs(name: str) -> list[str]:
    """Which source catalogues (psz2, mcxc, redmapper) the catalogue ``name`` reads."""
    if name not in CATALOG_NAMES:
        raise CatalogError(
            f"unknown training catalogue {name!r} (clusters.catalog.name): "
            f"expected one of {', '.join(CATALOG_NAMES)}"
        )
    if name in ("planck_z", "planck_no-z"):
        return ["psz2"]
    if name == "MCXC":
        return ["psz2", "mcxc"]
    return ["psz2", "mcxc", "redmapper"]


def theta500_from_r500(r500_mpc, z) -> np.ndarray:
    """θ500 [arcmin] = R500 / D_A(z) (Planck18); NaN where z or R500 is not positive."""
    r500 = np.asarray(r500_mpc, float)
    z = np.asarray(z, float)
    ok = (z > 0) & (r500 > 0) & np.isfinite(z) & np.isfinite(r500)
    out = np.full(r500.shape, np.nan)
    if ok.any():
        from astropy.cosmology import Planck18  # lazy: its import costs ~0.4 s per job

        da = Planck18.angular_diameter_distance(z[ok]).to_value(u.Mpc)
        out[ok] = np.degrees(r500[ok] / da) * 60.0
    return out


def theta500_from_m500(m500_1e14, z) -> np.ndarray:
    """θ500 [arcmin] from M500 [1e14 Msun] = (4π/3)·500·ρ_crit(z)·R500³ (Planck18)."""
    m = np.asarray(m500_1e14, float)
    z = np.asarray(z, float)
    ok = (z > 0) & (m > 0) & np.isfinite(z) & np.isfinite(m)
    r500 = np.full(m.shape, np.nan)
    if ok.any():
        from astropy.cosmology import Planck18  # lazy: its import costs ~0.4 s per job

        rho = Planck18.critical_density(z[ok]).to_value(u.Msun / u.Mpc**3)
        r500[ok] = (3 * m[ok] * 1e14 / (4 * np.pi * 500 * rho)) ** (1 / 3)
    return theta500_from_r500(r500, z)


def _coords(t: Table) -> SkyCoord:
    return SkyCoord(
        np.asarray(t["GLON"], float), np.asarray(t["GLAT"], float), unit="deg", frame="galactic"
    )


def dedupe(t: Table, radius_arcmin: float) -> Table:
    """Keep the first member of every group of entries closer than ``radius_arcmin``."""
    if len(t) < 2 or radius_arcmin <= 0:
        return t
    c = _coords(t)
    i, j, _, _ = search_around_sky(c, c, radius_arcmin * u.arcmin)
    pairs = i < j
    i, j = i[pairs], j[pairs]
    keep = np.ones(len(t), bool)
    order = np.lexsort((j, i))
    for a, b in zip(i[order], j[order], strict=True):  # greedy, in catalogue order
        if keep[a]:
            keep[b] = False
    return t[keep]


def merge(base: Table, extra: Table, radius_arcmin: float) -> Table:
    """``base`` plus the entries of ``extra`` with no ``base`` entry within the radius."""
    extra = dedupe(extra, radius_arcmin)
    if len(base) and len(extra) and radius_arcmin > 0:
        _, sep, _ = _coords(extra).match_to_catalog_sky(_coords(base))
        extra = extra[sep.to_value(u.arcmin) > radius_arcmin]
    return vstack([base, extra], join_type="exact") if len(base) else extra


def _table(name, glon, glat, z, theta, origin, warnings=()) -> Table:
    n = len(glon)
    z = np.asarray(z, float)
    table = Table(
        {
            "NAME": np.asarray(name, dtype=str),
            "GLON": np.asarray(glon, float) % 360.0,
            "GLAT": np.asarray(glat, float),
            "Z": np.where(np.isfinite(z) & (z > 0), z, np.nan),
            "THETA500": np.asarray(theta, float),
            "ORIGIN": np.full(n, origin, dtype="U4"),
        }
    )
    table.meta["warnings"] = list(warnings)
    return table


def _psz2(path) -> Table:
    t = read_psz2(path)
    z = np.asarray(t["REDSHIFT"], float)
    theta = theta500_from_m500(np.asarray(t["MSZ"], float), z)
    return _table(t["NAME"], t["GLON"], t["GLAT"], z, theta, "PSZ2", t.meta["warnings"])


def _mcxc(path) -> Table:
    t = read_mcxc(path)
    z = np.asarray(t["z"], float)
    theta = theta500_from_r500(np.asarray(t["R500"], float), z)
    return _table(t["MCXC"], t["GLON"], t["GLAT"], z, theta, "MCXC", t.meta["warnings"])


def _redmapper(path, min_lambda: float) -> Table:
    t = read_redmapper(path)
    t = t[np.asarray(t["LAMBDA"], float) > min_lambda]
    c = SkyCoord(
        np.asarray(t["RA"], float), np.asarray(t["DEC"], float), unit="deg", frame="icrs"
    ).galactic
    n = len(t)
    theta = np.full(n, np.nan)
    return _table(t["NAME"], c.l.deg, c.b.deg, t["Z_LAMBDA"], theta, "RM", t.meta["warnings"])


def build_catalog(name: str, paths: dict, merge_radius_arcmin: float = 5.0) -> Table:
    """The training catalogue ``name`` from the source files ``paths`` (psz2/mcxc/redmapper)."""
    for key in needed_inputs(name):
        if key not in paths or paths[key] is None:
            raise CatalogError(f"training catalogue {name!r} needs the {key} catalogue file")
    psz2 = _psz2(paths["psz2"])
    warnings = list(psz2.meta["warnings"])
    if name == "planck_z":
        cat = psz2[np.isfinite(psz2["Z"])]
        if not len(cat):
            raise CatalogError(
                f"{paths['psz2']}: training catalogue 'planck_z' (clusters.catalog.name) is "
                f"empty: none of the {len(psz2)} PSZ2 entries has a redshift (REDSHIFT > 0); "
                "use planck_no-z, MCXC, RM30 or RM50"
            )
    else:
        cat = psz2
    added = []
    if name in ("MCXC", "RM30", "RM50"):
        added.append(_mcxc(paths["mcxc"]))
    if name in ("RM30", "RM50"):
        added.append(_redmapper(paths["redmapper"], 30.0 if name == "RM30" else 50.0))
    for extra in added:
        warnings += extra.meta["warnings"]
        cat = merge(cat, extra, merge_radius_arcmin)
    if not len(cat):
        files = ", ".join(str(paths[k]) for k in needed_inputs(name))
        raise CatalogError(
            f"training catalogue {name!r} (clusters.catalog.name) is empty: no entry in {files}"
        )
    cat.meta.clear()
    cat.meta["warnings"] = warnings
    cat.meta["catalog"] = name
    cat.meta["merge_radius_arcmin"] = float(merge_radius_arcmin)
    cat["THETA500"].unit = u.arcmin
    cat["GLON"].unit = u.deg
    cat["GLAT"].unit = u.deg
    return cat


def check_training_coverage(cat: Table, train_tiles, name: str = "?") -> dict[int, int]:
    """Entries of ``cat`` per training tile (HEALPix nside-2 RING); raise if there are none.

    A catalogue with no cluster in any training tile would only fail at the patch jobs; this
    stops it at build_catalog, naming the keys that choose the tiles and the catalogue.
    """
    train_tiles = sorted(int(t) for t in train_tiles)
    tiles = np.asarray(tile_of(np.asarray(cat["GLON"], float), np.asarray(cat["GLAT"], float)))
    counts = {t: int(np.count_nonzero(tiles == t)) for t in train_tiles}
    if not sum(counts.values()):
        raise CatalogError(
            f"training catalogue {name!r} (clusters.catalog.name) has {len(cat)} entries but "
            f"none in the training tiles {train_tiles} (all tiles except clusters.tiles."
            "validation and clusters.tiles.test): no training patch could be cut"
        )
    return counts


def write_catalog(table: Table, path) -> None:
    """Write an ECSV catalogue atomically."""
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)


def read_training_catalog(path) -> Table:
    """Read a training catalogue (ECSV) and check its columns."""
    try:
        t = Table.read(path, format="ascii.ecsv")
    except Exception as exc:
        raise CatalogError(f"{path}: cannot read training catalogue: {exc}") from exc
    missing = [c for c in COLUMNS if c not in t.colnames]
    if missing:
        raise CatalogError(f"{path}: training catalogue lacks column(s) {missing}")
    rules = {"range": {"GLON": (0.0, 360.0), "GLAT": (-90.0, 90.0)}}
    return check_values(t, path, "training", rules)
