"""Real IR / radio compact-source catalogues read as they are distributed.

The cross-match flags detections near a compact source; its table has the layout
``ID GLON GLAT TYPE FLUX_<band>`` (:func:`skydetect.io.catalogs.read_sources`). Besides that
layout, these published files are converted on reading:

- ``pccs2``: a Planck PCCS2 per-frequency catalogue (``COM_PCCS_<GHz>_R2.01.fits``, one
  BINTABLE: ``NAME GLON GLAT RA DEC DETFLUX DETFLUX_ERR APERFLUX PSFFLUX GAUFLUX ...
  EXTENDED``, fluxes in mJy);
- ``pccs2e``: the PCCS2E "excluded" catalogue of the same channel
  (``COM_PCCS_<GHz>-excluded_R2.01.fits``, same columns; sources of lower reliability,
  mostly in the Galactic plane);
- ``iras_psc``: the IRAS Point Source Catalog v2.0 (HEASARC ``iraspsc``: ``NAME RA DEC LII
  BII FNU_12 FNU_25 FNU_60 FNU_100`` in Jy; the VizieR II/125 export ``IRAS RAJ2000 DEJ2000
  Fnu_12 ... Fnu_100`` is read too).

The frequency of a PCCS2(E) file is taken from its name (``COM_PCCS_<GHz>``) or from a
``FREQ`` header keyword. Its sources are typed ``ir`` at 353 GHz and above (dusty galaxies
and Galactic clumps dominate there) and ``radio`` below; every IRAS source is ``ir``. The
PCCS2 ``DETFLUX`` becomes ``FLUX_<GHz>`` (mJy); IRAS fluxes become ``FLUX_IRAS<um>`` (mJy).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from skydetect.io.catalog_values import as_float, check_values
from skydetect.io.tables import CatalogError

SOURCE_FORMATS = ("pccs2", "pccs2e", "iras_psc")
PCCS2_REQUIRED = ("NAME", "GLON", "GLAT", "DETFLUX")
IRAS_BANDS_UM = (12, 25, 60, 100)
_PCCS_NAME = re.compile(r"COM_PCCS_(\d{3})(-excluded)?", re.IGNORECASE)


def _col(table: Table, *names: str) -> str | None:
    lower = {c.lower(): c for c in table.colnames}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def detect_format(table: Table, path) -> str:
    """``pccs2``, ``pccs2e`` or ``iras_psc`` from the columns (and the file name)."""
    if _col(table, "DETFLUX"):
        m = _PCCS_NAME.search(Path(path).name)
        excluded = bool(m and m.group(2)) or "excluded" in Path(path).name.lower()
        return "pccs2e" if excluded else "pccs2"
    if _col(table, "FNU_60", "FNU_100"):
        return "iras_psc"
    raise CatalogError(
        f"{path}: not a recognised IR/radio source catalogue: expected the skydetect layout "
        "(ID GLON GLAT TYPE), a Planck PCCS2/PCCS2E file (NAME GLON GLAT DETFLUX) or the "
        f"IRAS PSC (NAME RA DEC FNU_60 ...); found columns {' '.join(table.colnames)}"
    )


def pccs2_frequency(table: Table, path) -> int:
    """The channel (GHz) of a PCCS2/PCCS2E file: from ``COM_PCCS_<GHz>`` or header ``FREQ``."""
    m = _PCCS_NAME.search(Path(path).name)
    if m:
        return int(m.group(1))
    for key in ("FREQ", "FREQUENCY"):
        if key in table.meta:
            return int(round(float(str(table.meta[key]).split()[0])))
    raise CatalogError(
        f"{path}: cannot tell the frequency of this PCCS2 file: keep the Planck file name "
        "(COM_PCCS_<GHz>_R2.01.fits) or add a FREQ header keyword (GHz)"
    )


def _pccs2(table: Table, path, excluded: bool) -> Table:
    kind = "pccs2e" if excluded else "pccs2"
    missing = [c for c in PCCS2_REQUIRED if _col(table, c) is None]
    if missing:
        raise CatalogError(
            f"{path}: {kind} catalogue lacks column(s) {', '.join(map(repr, missing))} "
            f"(required: {' '.join(PCCS2_REQUIRED)}; found: {' '.join(table.colnames)})"
        )
    freq = pccs2_frequency(table, path)
    t = Table({c: table[_col(table, c)] for c in PCCS2_REQUIRED})
    check_values(
        t,
        path,
        kind,
        {"range": {"GLON": (0.0, 360.0), "GLAT": (-90.0, 90.0)}, "finite": ("DETFLUX",)},
    )
    out = Table(
        {
            "ID": np.char.strip(np.asarray(t["NAME"], dtype=str)),
            "GLON": np.asarray(t["GLON"], float),
            "GLAT": np.asarray(t["GLAT"], float),
            "TYPE": np.full(len(t), "ir" if freq >= 353 else "radio"),
            f"FLUX_{freq}": np.asarray(t["DETFLUX"], float),
        }
    )
    ext = _col(table, "EXTENDED")
    if ext is not None:
        out["EXTENDED"] = np.asarray(table[ext]).astype(int)
    out.meta.update(format=kind, frequency_ghz=freq)
    return out


def _iras(table: Table, path) -> Table:
    name = _col(table, "NAME", "IRAS", "IRAS_NAME")
    lon, lat = _col(table, "GLON", "LII"), _col(table, "GLAT", "BII")
    ra, dec = _col(table, "RA", "RAJ2000", "_RAJ2000"), _col(table, "DEC", "DEJ2000", "_DEJ2000")
    fluxes = {um: _col(table, f"FNU_{um}") for um in IRAS_BANDS_UM}
    if name is None or ((lon is None or lat is None) and (ra is None or dec is None)):
        raise CatalogError(
            f"{path}: iras_psc catalogue needs a name (NAME or IRAS) and positions (LII BII, "
            f"GLON GLAT, or J2000 RA DEC); found: {' '.join(table.colnames)}"
        )
    if not any(fluxes.values()):
        raise CatalogError(f"{path}: iras_psc catalogue lacks FNU_12/25/60/100 (Jy)")
    if lon is not None and lat is not None:
        t = Table({"GLON": table[lon], "GLAT": table[lat]})
        check_values(t, path, "iras_psc", {"range": {"GLON": (0.0, 360.0), "GLAT": (-90.0, 90.0)}})
        glon, glat = np.asarray(t["GLON"], float), np.asarray(t["GLAT"], float)
    else:
        t = Table({ra: table[ra], dec: table[dec]})
        check_values(t, path, "iras_psc", {"range": {ra: (0.0, 360.0), dec: (-90.0, 90.0)}})
        c = SkyCoord(np.asarray(t[ra], float), np.asarray(t[dec], float), unit="deg").galactic
        glon, glat = c.l.deg, c.b.deg
    out = Table(
        {
            "ID": np.char.strip(np.asarray(table[name], dtype=str)),
            "GLON": glon,
            "GLAT": glat,
            "TYPE": np.full(len(table), "ir"),
        }
    )
    for um, col in fluxes.items():
        if col is not None:
            t = Table({col: table[col]})
            # upper limits and blanks are NaN in some exports: numeric is required, not finite
            out[f"FLUX_IRAS{um}"] = 1e3 * as_float(t, col, path, "iras_psc")  # Jy -> mJy
    out.meta.update(format="iras_psc")
    return out


def read_real_sources(table: Table, path, format: str | None = None) -> Table:
    """Convert a real source catalogue (already read into ``table``) to the skydetect layout."""
    fmt = format or detect_format(table, path)
    if fmt in ("pccs2", "pccs2e"):
        return _pccs2(table, path, excluded=fmt == "pccs2e")
    if fmt == "iras_psc":
        return _iras(table, path)
    raise CatalogError(f"{path}: unknown source catalogue format {fmt!r}")
