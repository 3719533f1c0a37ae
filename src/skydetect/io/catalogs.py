"""Column layouts, writers and readers of the cluster and compact-source catalogues.

Four catalogues, each written by the mock sky in the layout of the real file so that the same
reader serves mock, downloaded and local data:

- ``psz2``: the Planck PSZ2 union catalogue (``HFI_PCCS_SZ-union_R2.08.fits``): FITS BINTABLE
  extension ``PSZ2_UNION``, 30 columns; ``REDSHIFT`` is -1 where unknown, ``Y5R500`` in
  1e-3 arcmin^2, ``MSZ`` in 1e14 Msun (0 where unknown).
- ``mcxc``: the MCXC meta-catalogue (Piffaretti et al. 2011): ``MCXC GLON GLAT RAdeg DEdeg z
  M500 [1e14 Msun] R500 [Mpc] L500 [1e37 W]`` (the real file is an ASCII table; the mock
  writes a binary table with the same column names and units).
- ``redmapper``: redMaPPer-like optical catalogue: ``NAME RA DEC Z_LAMBDA LAMBDA``.
- ``sources``: IR / radio compact sources (ECSV): ``ID GLON GLAT TYPE FLUX_<band>`` with
  ``TYPE`` in {ir, radio} and fluxes in mJy.

Every reader takes the file in any format its archive publishes (FITS, VOTable, ECSV, CDS/MRT,
TSV, CSV; :mod:`skydetect.io.tables`). Readers check the required columns (case-insensitively, renaming to the canonical spelling)
and raise :class:`CatalogError` naming the file and the missing column. Then the values
(:func:`check_values`): positions finite and in range (GLON/RA 0..360, GLAT/DEC -90..90),
numeric columns numeric and finite, sizes finite and positive; the error names the file, the
column and the first bad row (counting data rows from 1). String columns are returned as
unicode, stripped. The IR/radio source catalogue may also be a real Planck PCCS2/PCCS2E or IRAS
PSC file (:mod:`skydetect.io.source_catalogs`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import MaskedColumn, Table

from skydetect.io.atomic import atomic_path
from skydetect.io.catalog_values import VALUE_RULES, check_content, check_values
from skydetect.io.content import warn_once
from skydetect.io.source_catalogs import SOURCE_FORMATS, read_real_sources
from skydetect.io.tables import CatalogError, file_label, logical_column, read_table

# Required columns of each catalogue (what later stages rely on).
REQUIRED: dict[str, tuple[str, ...]] = {
    "psz2": (
        "NAME",
        "GLON",
        "GLAT",
        "RA",
        "DEC",
        "SNR",
        "PIPELINE",
        "Y5R500",
        "REDSHIFT",
        "MSZ",
        "MCXC",
        "REDMAPPER",
        "COSMO",
    ),
    "mcxc": ("MCXC", "GLON", "GLAT", "RAdeg", "DEdeg", "z", "M500", "R500", "L500"),
    "redmapper": ("NAME", "RA", "DEC", "Z_LAMBDA", "LAMBDA"),
    "sources": ("ID", "GLON", "GLAT", "TYPE"),
}

# Full PSZ2 union layout: (name, FITS format, TUNIT) in the order of the real file.
PSZ2_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("INDEX", "I", "None"),
    ("NAME", "18A", "None"),
    ("GLON", "D", "degrees"),
    ("GLAT", "D", "degrees"),
    ("RA", "D", "degrees"),
    ("DEC", "D", "degrees"),
    ("POS_ERR", "E", "arcmin"),
    ("SNR", "E", "None"),
    ("PIPELINE", "I", "None"),
    ("PIPE_DET", "I", "None"),
    ("PCCS2", "L", "None"),
    ("PSZ", "I", "None"),
    ("IR_FLAG", "I", "None"),
    ("Q_NEURAL", "E", "None"),
    ("Y5R500", "E", "10^-3 arcmin^2"),
    ("Y5R500_ERR", "E", "10^-3 arcmin^2"),
    ("VALIDATION", "I", "None"),
    ("REDSHIFT_ID", "25A", "None"),
    ("REDSHIFT", "E", "None"),
    ("MSZ", "E", "10^14 Msol"),
    ("MSZ_ERR_UP", "E", "10^14 Msol"),
    ("MSZ_ERR_LOW", "E", "10^14 Msol"),
    ("MCXC", "25A", "None"),
    ("REDMAPPER", "25A", "None"),
    ("ACT", "25A", "None"),
    ("SPT", "25A", "None"),
    ("WISE_FLAG", "I", "None"),
    ("AMI_EVIDENCE", "E", "None"),
    ("COSMO", "L", "None"),
    ("COMMENT", "128A", "None"),
)

MCXC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("MCXC", "12A", ""),
    ("OName", "18A", ""),
    ("RAdeg", "D", "deg"),
    ("DEdeg", "D", "deg"),
    ("GLON", "D", "deg"),
    ("GLAT", "D", "deg"),
    ("z", "D", ""),
    ("L500", "D", "10+37W"),
    ("M500", "D", "10+14Msun"),
    ("R500", "D", "Mpc"),
)

REDMAPPER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("MEM_MATCH_ID", "J", ""),
    ("NAME", "20A", ""),
    ("RA", "D", "deg"),
    ("DEC", "D", "deg"),
    ("Z_LAMBDA", "E", ""),
    ("LAMBDA", "E", ""),
)

# Sentinel of an unknown redshift in PSZ2 (as in the real file).
PSZ2_NO_REDSHIFT = -1.0

# --------------------------------------------------------------------------- helpers
def _write_bintable(
    path: str | Path,
    layout: tuple[tuple[str, str, str], ...],
    data: dict,
    extname: str,
    n: int,
) -> None:
    """Write ``data`` (column -> array; missing columns get blank/zero) as a BINTABLE."""
    cols = []
    for name, fmt, unit in layout:
        if name in data:
            arr = np.asarray(data[name])
        elif fmt.endswith("A"):
            arr = np.full(n, "", dtype="U1")
        elif fmt == "L":
            arr = np.zeros(n, dtype=bool)
        else:
            arr = np.zeros(n)
        if len(arr) != n:
            raise ValueError(f"column {name!r} has {len(arr)} rows, expected {n}")
        cols.append(fits.Column(name=name, format=fmt, unit=unit or None, array=arr))
    hdu = fits.BinTableHDU.from_columns(cols, name=extname)
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True, checksum=True)


def _read_table(path: str | Path, kind: str) -> Table:
    return read_table(path, f"{kind} catalogue")


def _require(table: Table, path: str | Path, kind: str, required=None) -> Table:
    """Rename columns to the canonical spelling; raise naming the first missing column."""
    required = REQUIRED[kind] if required is None else required
    lower = {c.lower(): c for c in table.colnames}
    missing = []
    for name in required:
        if name in table.colnames:
            continue
        found = lower.get(name.lower())
        if found is None:
            missing.append(name)
        else:
            table.rename_column(found, name)
    if missing:
        raise CatalogError(
            f"{path}: {kind} catalogue lacks column(s) {', '.join(repr(m) for m in missing)} "
            f"(required: {' '.join(required)}; found: {' '.join(table.colnames)})"
        )
    for name in table.colnames:
        col = table[name]
        if col.dtype.kind == "U":
            values = col.filled("") if isinstance(col, MaskedColumn) else col
            table[name] = np.char.strip(np.asarray(values))
    return table


# --------------------------------------------------------------------------- PSZ2
def write_psz2(path: str | Path, data: dict) -> None:
    """Write a PSZ2-union-layout FITS file; ``data`` maps column names to arrays.

    Columns not given are written blank (strings), False (logicals) or 0. ``INDEX`` defaults
    to 1..N. ``REDSHIFT`` must use -1 for unknown redshifts, as the real file does.
    """
    n = len(np.asarray(data["NAME"]))
    data = dict(data)
    data.setdefault("INDEX", np.arange(1, n + 1))
    _write_bintable(path, PSZ2_COLUMNS, data, "PSZ2_UNION", n)


def read_psz2(path: str | Path) -> Table:
    """Read a PSZ2 union file (real or mock); ``Y5R500`` in 1e-3 arcmin^2, ``REDSHIFT`` -1 if
    unknown, ``COSMO`` bool (also from a text format's True/False or 1/0).

    A redshift <= 0 is unknown (a cluster cannot be at z <= 0): entries written as 0 (or any
    other non-positive value but the file's -1) are set to -1 with a warning.
    """
    table = check_values(_require(_read_table(path, "psz2"), path, "psz2"), path, "psz2")
    logical_column(table, "COSMO", path, "psz2 catalogue")
    table = check_content(table, path, "psz2")
    z = np.asarray(table["REDSHIFT"], float)
    odd = (z <= 0) & (z != PSZ2_NO_REDSHIFT)
    if odd.any():
        warn_once(
            table.meta["warnings"],
            f"{path}: psz2 column 'REDSHIFT' is {sorted(set(z[odd].tolist()))[:3]} in "
            f"{int(odd.sum())} row(s); a redshift <= 0 is unknown (the file's sentinel is -1), "
            "so these entries are treated as without redshift",
        )
    # NaN and any other value <= 0: unknown, written as the file's sentinel
    table["REDSHIFT"] = np.where(odd | np.isnan(z), PSZ2_NO_REDSHIFT, z)
    return table


# --------------------------------------------------------------------------- MCXC
def write_mcxc(path: str | Path, data: dict) -> None:
    n = len(np.asarray(data["MCXC"]))
    _write_bintable(path, MCXC_COLUMNS, data, "MCXC", n)


def read_mcxc(path: str | Path) -> Table:
    """Read an MCXC file: the CDS file (J/A+A/534/A109, an ASCII-table FITS with ``RAdeg
    DEdeg``), a VizieR FITS export (``RAJ2000 DEJ2000``) or the mock binary table."""
    table = _read_table(path, "mcxc")
    _alias(table, {"RAJ2000": "RAdeg", "DEJ2000": "DEdeg", "_RAJ2000": "RAdeg", "_DEJ2000": "DEdeg"})
    return check_content(check_values(_require(table, path, "mcxc"), path, "mcxc"), path, "mcxc")


def _alias(table: Table, aliases: dict) -> None:
    """Rename ``aliases`` keys (case-insensitive) to their values where the target is absent."""
    lower = {c.lower(): c for c in table.colnames}
    for src, dst in aliases.items():
        if dst.lower() not in lower and src.lower() in lower:
            table.rename_column(lower[src.lower()], dst)
            lower = {c.lower(): c for c in table.colnames}


# --------------------------------------------------------------------------- redMaPPer
def write_redmapper(path: str | Path, data: dict) -> None:
    n = len(np.asarray(data["NAME"]))
    data = dict(data)
    data.setdefault("MEM_MATCH_ID", np.arange(1, n + 1))
    _write_bintable(path, REDMAPPER_COLUMNS, data, "REDMAPPER", n)


def read_redmapper(path: str | Path) -> Table:
    """Read a redMaPPer cluster catalogue: the published SDSS DR8 / DES files
    (``MEM_MATCH_ID NAME RA DEC Z_LAMBDA LAMBDA``; v5.10's ``LAMBDA_CHISQ`` and ``ID`` taken
    as ``LAMBDA``) or the mock. A file without ``NAME`` is named by ``MEM_MATCH_ID``."""
    table = _read_table(path, "redmapper")
    _alias(table, {"LAMBDA_CHISQ": "LAMBDA", "ID": "MEM_MATCH_ID"})
    lower = {c.lower() for c in table.colnames}
    if "name" not in lower and "mem_match_id" in lower:
        ids = table[[c for c in table.colnames if c.lower() == "mem_match_id"][0]]
        table["NAME"] = [f"RM{int(i)}" for i in ids]
    table = check_values(_require(table, path, "redmapper"), path, "redmapper")
    return check_content(table, path, "redmapper")


# --------------------------------------------------------------------------- sources
def write_sources(path: str | Path, table: Table) -> None:
    """Write the IR/radio source table as ECSV (atomic)."""
    _require(table.copy(copy_data=False), path, "sources")
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)


def read_sources(path: str | Path, format: str | None = None) -> Table:
    """Read the IR/radio source table: ``ID GLON GLAT TYPE`` (ir/radio) and ``FLUX_<band>`` [mJy].

    ``format``: ``skydetect`` (this layout, ECSV), ``pccs2`` / ``pccs2e`` (a Planck PCCS2 or
    PCCS2E per-frequency FITS file), ``iras_psc`` (the IRAS Point Source Catalog), or
    ``auto``/None (recognised from the file's columns). Real files are converted to this
    layout by :mod:`skydetect.io.source_catalogs`.
    """
    if format not in (None, "auto", "skydetect") and format not in SOURCE_FORMATS:
        raise CatalogError(
            f"{path}: unknown source catalogue format {format!r} (planck.sources_format): "
            f"expected auto, skydetect or one of {', '.join(SOURCE_FORMATS)}"
        )
    table = _read_table(path, "sources")
    if format in SOURCE_FORMATS or (format in (None, "auto") and "TYPE" not in {
        c.upper() for c in table.colnames
    }):
        table = read_real_sources(table, path, None if format == "auto" else format)
    table = _require(table, path, "sources")
    bad = set(np.unique(np.asarray(table["TYPE"]))) - {"ir", "radio"}
    if bad:
        raise CatalogError(f"{path}: column 'TYPE' has values {sorted(bad)}; expected ir or radio")
    rules = {**VALUE_RULES["sources"], "numeric_prefix": ("FLUX_",)}
    return check_content(check_values(table, path, "sources", rules), path, "sources")


def read_source_catalogs(paths, format: str | None = None) -> dict[str, Table]:
    """Several IR/radio source catalogues (:func:`read_sources`), by file label (the name
    without its table suffix, e.g. ``COM_PCCS_857_R2.01``); two files of one label are refused."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    out: dict[str, Table] = {}
    for path in paths:
        label = file_label(path)
        if label in out:
            raise CatalogError(
                f"{path}: two IR/radio source catalogues are named {label!r}: give them "
                "distinct file names (the name labels the catalogue in the cross-match)"
            )
        out[label] = read_sources(path, format)
    return out


READERS = {
    "psz2": read_psz2,
    "mcxc": read_mcxc,
    "redmapper": read_redmapper,
    "sources": read_sources,
}


def read_catalog(name: str, path: str | Path, **kw) -> Table:
    """Read catalogue ``name`` (psz2, mcxc, redmapper, sources) from ``path``."""
    try:
        reader = READERS[name]
    except KeyError:
        raise CatalogError(
            f"unknown catalogue {name!r}: expected one of {', '.join(READERS)}"
        ) from None
    return reader(path, **kw)
