"""Value and content rules of the catalogues (PSZ2, MCXC, redMaPPer, IR/radio sources):
positions in range, numeric columns finite, sizes positive, redshifts plausible, rows to
read and names that say one thing. Every error names the file, the column and the first bad
row (data rows counted from 1).
"""

from __future__ import annotations

import numpy as np
from astropy.table import MaskedColumn, Table

from skydetect.io.content import duplicate_rows, warn_once
from skydetect.io.tables import CatalogError

# No known galaxy cluster lies beyond this redshift: a larger value is a wrong column or unit.
MAX_CLUSTER_Z = 5.0

# Value rules per catalogue: position ranges, finite numeric columns, positive sizes.
_LON, _LAT = (0.0, 360.0), (-90.0, 90.0)
VALUE_RULES: dict[str, dict] = {
    "psz2": {
        "range": {"GLON": _LON, "GLAT": _LAT, "RA": _LON, "DEC": _LAT},
        "finite": ("Y5R500", "MSZ"),
        "positive": ("SNR",),
        "plausible": {"REDSHIFT": (-np.inf, MAX_CLUSTER_Z)},
    },
    "mcxc": {
        "range": {"GLON": _LON, "GLAT": _LAT, "RAdeg": _LON, "DEdeg": _LAT},
        "finite": ("L500",),
        "positive": ("z", "M500", "R500"),
        "plausible": {"z": (0.0, MAX_CLUSTER_Z)},
    },
    "redmapper": {
        "range": {"RA": _LON, "DEC": _LAT},
        "finite": (),
        "positive": ("Z_LAMBDA", "LAMBDA"),
        "plausible": {"Z_LAMBDA": (0.0, MAX_CLUSTER_Z)},
    },
    "sources": {"range": {"GLON": _LON, "GLAT": _LAT}, "finite": (), "positive": ()},
}



def as_float(table: Table, name: str, path, kind: str) -> np.ndarray:
    """Column ``name`` as float (masked -> NaN); a non-numeric entry names its row."""
    col = table[name]
    mask = np.asarray(col.mask) if isinstance(col, MaskedColumn) else np.zeros(len(col), bool)
    values = np.asarray(col)
    if values.dtype.kind in "fiub":
        out = values.astype(float)
    else:
        out = np.empty(len(values))
        for i, v in enumerate(values):
            if mask[i] or str(v).strip() == "":
                out[i] = np.nan
                continue
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                raise CatalogError(
                    f"{path}: {kind} catalogue column {name!r} row {i + 1}: {str(v)!r} is not "
                    "a number"
                ) from None
    out[mask] = np.nan
    return out


def _first_bad(bad: np.ndarray, values: np.ndarray) -> str:
    i = int(np.flatnonzero(bad)[0])
    return f"row {i + 1} is {float(values[i])!r} ({int(bad.sum())} bad row(s) in all)"


def check_values(table: Table, path, kind: str, rules: dict | None = None) -> Table:
    """Check the values of ``table`` against :data:`VALUE_RULES` ``[kind]`` (or ``rules``).

    Columns checked are converted to float in place. Raises :class:`CatalogError` naming the
    file, the column and the first bad row.
    """
    rules = VALUE_RULES[kind] if rules is None else rules
    for name, (lo, hi) in rules.get("range", {}).items():
        if name not in table.colnames:
            continue
        v = as_float(table, name, path, kind)
        bad = ~np.isfinite(v) | (v < lo) | (v > hi)
        if bad.any():
            raise CatalogError(
                f"{path}: {kind} catalogue column {name!r} must be finite and within "
                f"[{lo:g}, {hi:g}] degrees: {_first_bad(bad, v)}"
            )
        table[name] = v
    for name in (*rules.get("finite", ()), *rules.get("positive", ())):
        if name not in table.colnames:
            continue
        v = as_float(table, name, path, kind)
        positive = name in rules.get("positive", ())
        bad = ~np.isfinite(v) | ((v <= 0) if positive else False)
        if bad.any():
            what = "finite and positive" if positive else "a finite number"
            raise CatalogError(
                f"{path}: {kind} catalogue column {name!r} must be {what}: {_first_bad(bad, v)}"
            )
        table[name] = v
    for name, (lo, hi) in rules.get("plausible", {}).items():
        if name not in table.colnames:
            continue
        v = as_float(table, name, path, kind)
        bad = np.isinf(v) | (v < lo) | (v > hi)
        if bad.any():
            raise CatalogError(
                f"{path}: {kind} catalogue column {name!r} must lie within [{lo:g}, {hi:g}] "
                f"(NaN = unknown): {_first_bad(bad, v)}"
            )
        table[name] = v
    for name in rules.get("numeric_prefix", ()):
        for col in [c for c in table.colnames if c.upper().startswith(name)]:
            table[col] = as_float(table, col, path, kind)
    return table


# The column that names an entry: a name repeated with other values is an error, an exact
# repeat of a row is dropped with a warning.
NAME_COLUMNS = {"psz2": "NAME", "mcxc": "MCXC", "redmapper": "NAME", "sources": "ID"}


def check_content(table: Table, path, kind: str) -> Table:
    """Content rules every catalogue obeys: rows to read, names that say one thing.

    Raises :class:`CatalogError` naming the file for a catalogue with no rows or a name given
    twice with different values; drops exact repeats of a row with a warning (kept in
    ``table.meta["warnings"]``, which the rules write beside their results).
    """
    warnings = table.meta.setdefault("warnings", [])
    if len(table) == 0:
        raise CatalogError(
            f"{path}: {kind} catalogue has no rows (an empty or truncated file?): every "
            "candidate would count as unmatched"
        )
    name = NAME_COLUMNS.get(kind)
    if name is None or name not in table.colnames:
        return table
    signature = [tuple(str(v) for v in row) for row in table.iterrows()]
    exact, conflicts = duplicate_rows(table[name], signature)
    if conflicts:
        i, j = conflicts[0]
        raise CatalogError(
            f"{path}: {kind} catalogue column {name!r}: {str(table[name][j])!r} names rows "
            f"{i + 1} and {j + 1} with different values ({len(conflicts)} such repeat(s) in "
            "all): a name must identify one entry"
        )
    if exact.any():
        warn_once(
            warnings,
            f"{path}: {kind} catalogue repeats {int(exact.sum())} row(s) exactly (first: row "
            f"{int(np.flatnonzero(exact)[0]) + 1}, {name} {str(table[name][exact][0])!r}); "
            "each is kept once",
        )
        table = table[~exact]
        table.meta["warnings"] = warnings
    return table
