"""IR_FLAG of the published cluster catalogue and its chance rate.

A candidate is flagged when an infrared compact source brighter than a flux threshold
(``clusters.cluster_catalog.ir_flux_column`` >= ``ir_flux_min_mjy``, sources of ``TYPE`` ir)
lies within ``clusters.crossmatch.source_radius_arcmin`` of it: its S/N may come, in part,
from the dusty source (as PSZ2's IR_FLAG). How often the flag is raised by chance is measured
at random positions, uniform on the sphere, in the same tiles: the fraction of them flagged
(with its binomial error) is the rate at which a real cluster is flagged by an unrelated
source.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, search_around_sky

from skydetect.geometry import tiles


class IRFlagError(ValueError):
    """Bad IR-flag input (the message names the column or key)."""


def bright_ir_sources(sources: dict, column: str, min_flux_mjy: float) -> SkyCoord:
    """Galactic positions of the IR sources (``TYPE`` ir) of every source table (label ->
    table with ``GLON GLAT TYPE`` and the flux ``column`` in mJy) at ``min_flux_mjy`` or
    brighter. A table without ``column`` contributes nothing; none having it is an error."""
    lon, lat, having = [], [], []
    for label, table in sources.items():
        if column not in table.colnames:
            continue
        having.append(label)
        col = table[column]
        flux = u.Quantity(col).to_value(u.mJy) if col.unit else np.asarray(col, float)
        kind = np.char.lower(np.asarray(table["TYPE"], dtype=str))
        keep = (kind == "ir") & (np.nan_to_num(flux, nan=-np.inf) >= min_flux_mjy)
        lon.append(np.asarray(table["GLON"], float)[keep])
        lat.append(np.asarray(table["GLAT"], float)[keep])
    if sources and not having:
        raise IRFlagError(
            f"clusters.cluster_catalog.ir_flux_column {column!r}: no IR/radio source catalogue "
            f"has that column ({', '.join(sources)}): name one of their FLUX_<band> columns"
        )
    lon = np.concatenate(lon) if lon else np.zeros(0)
    lat = np.concatenate(lat) if lat else np.zeros(0)
    return SkyCoord(lon, lat, unit="deg", frame="galactic")


def ir_flags(coords: SkyCoord, ir: SkyCoord, radius_arcmin: float) -> np.ndarray:
    """True where an ``ir`` source lies within ``radius_arcmin`` of ``coords``."""
    flag = np.zeros(len(coords), dtype=bool)
    if len(coords) and len(ir):
        i, *_ = search_around_sky(coords, ir, radius_arcmin * u.arcmin)
        flag[i] = True
    return flag


def random_positions(tile_ids, n: int, rng: np.random.Generator) -> SkyCoord:
    """``n`` positions uniform on the sphere inside the nside-2 tiles ``tile_ids``."""
    tile_ids = np.asarray(sorted(set(int(t) for t in tile_ids)))
    if not len(tile_ids):
        raise IRFlagError("no tile to draw random positions in")
    lon, lat = np.zeros(0), np.zeros(0)
    batch = max(1024, int(1.2 * n * tiles.N_TILES / len(tile_ids)))
    while len(lon) < n:
        z = rng.uniform(-1.0, 1.0, batch)
        phi = rng.uniform(0.0, 360.0, batch)
        b = np.degrees(np.arcsin(z))
        keep = np.isin(tiles.tile_of(phi, b), tile_ids)
        lon, lat = np.concatenate([lon, phi[keep]]), np.concatenate([lat, b[keep]])
    return SkyCoord(lon[:n], lat[:n], unit="deg", frame="galactic")


def chance_rate(tile_ids, ir: SkyCoord, radius_arcmin: float, n: int, seed: int) -> dict:
    """The IR flag's rate at ``n`` random positions in the tiles (module docstring)."""
    pos = random_positions(tile_ids, n, np.random.default_rng(seed))
    k = int(ir_flags(pos, ir, radius_arcmin).sum())
    rate = k / n
    return {
        "rate": rate,
        "rate_err": float(np.sqrt(max(rate * (1 - rate), 1.0 / n) / n)),
        "n_random": int(n),
        "n_flagged": k,
        "tiles": [int(t) for t in sorted(set(int(t) for t in tile_ids))],
        "radius_arcmin": float(radius_arcmin),
        "n_sources": int(len(ir)),
        "seed": int(seed),
    }
