"""The bubble catalogue in the Milky Way Project DR2 layout (Jayasinghe et al. 2019).

One table layout for the real catalogue and the mock truth: ``MWP`` (name), ``GLON GLAT``
(degrees; GLON wrapped to (-180, 180], so longitudes just below 360 are negative l),
``MajAxis MinAxis Reff`` (arcmin; semi-axes and effective radius), ``theta`` (degrees,
position angle of the major axis counted from +l towards +b), ``Ecc`` and ``CLEAR`` (bool:
8 µm ring clearly enclosing 24 µm emission, the training selection of Nishimoto et al. 2025).

Pixel geometry of bubbles in a field (centres, boxes of ±1.3·MajAxis) is computed here from
the field's WCS; the box convention is that of :mod:`skydetect.bubbles.windows`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack

from skydetect.io.atomic import atomic_path
from skydetect.io.content import duplicate_rows, warn_once
from skydetect.io.spitzer import wrap_glon
from skydetect.io.tables import CatalogError, read_table
from skydetect.schema import schema_defaults

# re-exported: the catalogue layout wraps GLON this way; the error of every catalogue reader
__all__ = ["CatalogError", "wrap_glon"]

log = logging.getLogger(__name__)

COLUMNS = ["MWP", "GLON", "GLAT", "MajAxis", "MinAxis", "Reff", "theta", "Ecc"]
FLOAT_COLUMNS = ["GLON", "GLAT", "MajAxis", "MinAxis", "Reff", "theta", "Ecc"]
UNITS = {"GLON": "deg", "GLAT": "deg", "MajAxis": "arcmin", "MinAxis": "arcmin"}
UNITS |= {"Reff": "arcmin", "theta": "deg"}
#: Half-width of a bubble's box in MajAxis (the schema's ``bubbles.windows.box_scale``)
BOX_SCALE = float(schema_defaults("bubbles.windows")["box_scale"])
#: Crop and window half-widths in MajAxis (the schema's ``bubbles.negatives.half_width_factor``)
HALF_WIDTH_FACTOR = tuple(schema_defaults("bubbles.negatives")["half_width_factor"])


def load_clear_names(path: str | os.PathLike) -> np.ndarray:
    """The clear-bubble name list (.npy unicode array), loaded without pickles."""
    try:
        names = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise CatalogError(f"{path}: cannot read the clear-bubble name list: {err}") from err
    if names.dtype.kind not in "US" or names.ndim != 1:
        raise CatalogError(f"{path}: expected a 1-d string array, got {names.dtype} {names.shape}")
    return names.astype(str)


def read_mwp(
    path: str | os.PathLike, clear_names: np.ndarray | str | os.PathLike | None = None
) -> Table:
    """Read MWP DR2 into the catalogue layout, in any published format (FITS, VOTable, CSV,
    TSV, CDS/MRT; :func:`skydetect.io.tables.read_table`). Columns are matched
    case-insensitively; the name is column ``MWP``, else the first column (the CSV export
    leaves it unnamed).

    ``clear_names`` (array or .npy path) sets ``CLEAR``; without it every bubble is unclear.
    Clear names that match no row are logged (count and names) and kept in
    ``meta["unmatched_clear_names"]``.
    """
    raw = read_table(path, "MWP DR2 catalogue")
    lower = {c.lower(): c for c in raw.colnames}
    name_col = lower.get("mwp", raw.colnames[0])
    missing = [c for c in FLOAT_COLUMNS if c.lower() not in lower]
    if missing:
        raise CatalogError(
            f"{path}: MWP DR2 catalogue lacks column(s) {', '.join(missing)} "
            f"(found: {', '.join(raw.colnames)})"
        )
    if len(raw) == 0:
        raise CatalogError(f"{path}: MWP DR2 catalogue has no rows (an empty or truncated file?)")
    out = Table()
    out["MWP"] = np.char.strip(np.asarray(raw[name_col]).astype(str))
    for col in FLOAT_COLUMNS:
        out[col] = _numeric(raw[lower[col.lower()]], path, col)
    _check(out, path)  # before wrapping: GLON is checked as given
    out["GLON"] = wrap_glon(out["GLON"])
    if isinstance(clear_names, str | os.PathLike):
        clear_names = load_clear_names(clear_names)
    if clear_names is None:
        out["CLEAR"] = np.zeros(len(out), bool)
    else:
        clear_names = np.char.strip(np.asarray(clear_names).astype(str))
        out["CLEAR"] = np.isin(out["MWP"], clear_names)
        unmatched = sorted(set(clear_names) - set(out["MWP"]))
        out.meta["unmatched_clear_names"] = unmatched
        if unmatched:
            log.warning(
                "%d of %d clear bubble names match no row of %s: %s",
                len(unmatched), len(set(clear_names)), path, ", ".join(unmatched),
            )  # fmt: skip
    _check(out, path)
    out = _drop_repeats(out, path)
    _set_units(out)
    return out


def _drop_repeats(table: Table, path) -> Table:
    """An exact repeat of a row is dropped with a warning (kept in ``meta["warnings"]``); a
    name given to two different bubbles stops with both rows."""
    signature = [tuple(str(v) for v in row) for row in table.iterrows()]
    exact, conflicts = duplicate_rows(table["MWP"], signature)
    if conflicts:
        i, j = conflicts[0]
        raise CatalogError(
            f"{path}: MWP name {str(table['MWP'][j])!r} is given to rows {i + 1} and {j + 1} with "
            f"different values ({len(conflicts)} such repeat(s) in all)"
        )
    warnings = table.meta.setdefault("warnings", [])
    if exact.any():
        warn_once(
            warnings,
            f"{path}: MWP DR2 catalogue repeats {int(exact.sum())} row(s) exactly (first: "
            f"{str(table['MWP'][exact][0])!r}); each is kept once",
        )
        table = table[~exact]
        table.meta["warnings"] = warnings
    return table


def _numeric(column, path, name: str) -> np.ndarray:
    """A catalogue column as float; a blank or non-numeric entry names file, column and row."""
    mask = np.asarray(np.ma.getmaskarray(column))
    values = np.asarray(column)
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        text = "" if mask[i] else str(v).strip()
        try:
            out[i] = float(text)
        except ValueError:
            what = "is blank" if not text else f"is {text!r}, not a number"
            raise CatalogError(f"{path}: column {name} row {i + 1} {what}") from None
    return out


# (low, high) of every numeric column; sizes must also be > 0. GLON may be given in
# [0, 360] (MWP DR2) or already wrapped to (-180, 180].
_RANGES = {
    "GLON": (-180.0, 360.0),
    "GLAT": (-90.0, 90.0),
    "MajAxis": (0.0, np.inf),
    "MinAxis": (0.0, np.inf),
    "Reff": (0.0, np.inf),
    "theta": (-360.0, 360.0),
    "Ecc": (0.0, 1.0),
}
_POSITIVE = ("MajAxis", "MinAxis", "Reff")


def _check(table: Table, path) -> None:
    """Every numeric column finite and in range, sizes positive (file, column, first row)."""
    for col, (lo, hi) in _RANGES.items():
        v = np.asarray(table[col], dtype=float)
        bad = ~np.isfinite(v) | (v < lo) | (v > hi)
        if col in _POSITIVE:
            bad |= v <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            rule = "finite and positive" if col in _POSITIVE else f"finite, in [{lo:g}, {hi:g}]"
            raise CatalogError(
                f"{path}: column {col} must be {rule}: row {i + 1} is {float(v[i])!r} "
                f"({int(bad.sum())} bad row(s))"
            )


def _set_units(table: Table) -> None:
    for col, unit in UNITS.items():
        table[col].unit = unit


def empty_catalog() -> Table:
    t = Table()
    t["MWP"] = np.zeros(0, dtype="U20")
    for col in FLOAT_COLUMNS:
        t[col] = np.zeros(0)
    t["CLEAR"] = np.zeros(0, bool)
    _set_units(t)
    return t


def write_catalog(path: str | os.PathLike, table: Table) -> None:
    """Write the catalogue as ECSV via a temporary file in the same directory."""
    path = Path(path)
    missing = [c for c in [*COLUMNS, "CLEAR"] if c not in table.colnames]
    if missing:
        raise CatalogError(f"catalogue for {path} lacks column(s) {', '.join(missing)}")
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)


def read_catalog(path: str | os.PathLike) -> Table:
    """Read a catalogue written by :func:`write_catalog` (columns checked)."""
    try:
        table = Table.read(path, format="ascii.ecsv")
    except Exception as err:
        raise CatalogError(f"{path}: cannot read as ECSV: {err}") from err
    missing = [c for c in [*COLUMNS, "CLEAR"] if c not in table.colnames]
    if missing:
        raise CatalogError(f"{path}: bubble catalogue lacks column(s) {', '.join(missing)}")
    table["CLEAR"] = np.asarray(table["CLEAR"], bool)
    table["MWP"] = np.asarray(table["MWP"]).astype(str)
    _check(table, path)
    return table


def bubble_pixels(table: Table, wcs) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel centres (x, y) of the bubbles through the field's celestial WCS
    (Galactic, or any other frame: the positions are converted with SkyCoord)."""
    if len(table) == 0:
        return np.zeros(0), np.zeros(0)
    glon, glat = np.asarray(table["GLON"], float), np.asarray(table["GLAT"], float)
    w = wcs.celestial
    if str(w.wcs.ctype[0]).startswith("GLON"):
        x, y = w.world_to_pixel_values(glon, glat)
    else:
        x, y = w.world_to_pixel(SkyCoord(glon * u.deg, glat * u.deg, frame="galactic"))
    return np.asarray(x, float), np.asarray(y, float)


def bubble_boxes(
    table: Table, wcs, pixel_arcsec: float, box_scale: float = BOX_SCALE
) -> np.ndarray:
    """Boxes (N, 4) ``x_min y_min x_max y_max`` (pixel-edge coordinates) of ±box_scale·MajAxis."""
    x, y = bubble_pixels(table, wcs)
    half = box_scale * np.asarray(table["MajAxis"], float) * 60.0 / pixel_arcsec
    xc, yc = x + 0.5, y + 0.5
    return np.stack([xc - half, yc - half, xc + half, yc + half], axis=1).reshape(-1, 4)


def in_field(table: Table, wcs, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the bubbles whose centre falls on the field's pixel grid."""
    x, y = bubble_pixels(table, wcs)
    h, w = shape
    return (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)


def assign_fields(table: Table, centres: dict[str, float], half_width_deg: float = 1.5) -> Table:
    """Add ``FIELD``: the field whose centre longitude is nearest (within the half-width), else ''."""
    glon = np.asarray(table["GLON"], float)
    field = np.full(len(table), "", dtype="U10")
    best = np.full(len(table), np.inf)
    for name, lc in centres.items():
        d = np.abs(wrap_glon(glon - lc))
        better = (d <= half_width_deg) & (d < best)
        field[better] = name
        best[better] = d[better]
    table["FIELD"] = field
    return table


def combine(tables: list[Table]) -> Table:
    """Stack field catalogues (e.g. the mock truths) into one, keeping the layout."""
    parts = [t for t in tables if len(t)]
    if not parts:
        return empty_catalog()
    out = vstack(parts, metadata_conflicts="silent")
    out["CLEAR"] = np.asarray(out["CLEAR"], bool)
    _set_units(out)
    return out
