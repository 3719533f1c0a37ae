"""Catalogue files read as they are published, with astropy's readers.

Every catalogue (PSZ2, MCXC, redMaPPer, the IR/radio source lists, MWP DR2) may come in any
format its archive serves; the format is recognised from the file's content (a download may
carry any name), gzip-compressed or not:

- ``fits``: a FITS table (binary or ASCII), the first table extension;
- ``votable``: a VOTable (XML), the first table;
- ``ecsv``: astropy's ECSV;
- ``cds``: a CDS/VizieR or AAS MRT table with its byte-by-byte description in the file, or
  a fixed-width data file with the ``ReadMe`` of its catalogue beside it;
- ``tsv``: tab-separated values, ``#`` comments; VizieR's TSV (a units line and a dashes
  line under the column names) included;
- ``csv``: comma-separated values.

:func:`read_table` returns an astropy Table with unicode strings; an unreadable file raises
:class:`CatalogError` naming the file and the format it was read as.
"""

from __future__ import annotations

import gzip
import re
import warnings
from pathlib import Path

import numpy as np
from astropy.io.votable.exceptions import VOWarning
from astropy.table import Table
from astropy.units import UnitsWarning
from astropy.utils.exceptions import AstropyWarning

FORMATS = ("fits", "votable", "ecsv", "cds", "tsv", "csv")
_HEAD_BYTES = 65536
_DASHES = re.compile(r"^[-\s]+$")


class CatalogError(ValueError):
    """A catalogue file that is missing, unreadable or lacks a required column."""


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    return head


def _lines(text: str) -> list[str]:
    """Non-blank lines that are not ``#`` comments."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def sniff_format(path: str | Path) -> str:
    """The format of a catalogue file (one of :data:`FORMATS`), from its first bytes."""
    path = Path(path)
    head = _head(path)
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    stripped = head.lstrip()
    if stripped.startswith(b"<?xml") or b"<VOTABLE" in head[:4096]:
        return "votable"
    text = head.decode("utf-8", errors="replace")
    if text.startswith("# %ECSV"):
        return "ecsv"
    if "Byte-by-byte Description" in text:
        return "cds"
    lines = _lines(text)
    first = lines[0] if lines else ""
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    if (path.parent / "ReadMe").is_file():  # a VizieR data file (fixed-width, no header)
        return "cds"
    raise CatalogError(
        f"{path}: cannot tell the table format (expected FITS, VOTable, ECSV, CDS/MRT, TSV or "
        f"CSV; first line {first[:80]!r})"
    )


def _tsv_options(path: Path) -> dict:
    """VizieR's TSV has a units line and a dashes line under the column names."""
    text = _head(path).decode("utf-8", errors="replace")
    # a units line of empty units holds only tabs: a row for astropy's tab reader, not a blank
    lines = [ln for ln in text.splitlines() if ln.strip(" \r") and not ln.startswith("#")]
    if len(lines) >= 3 and _DASHES.match(lines[2]):
        return {"data_start": 3}
    return {}


def _read(path: Path, fmt: str) -> Table:
    if fmt == "fits":
        return Table.read(path, format="fits")
    if fmt == "votable":
        return Table.read(path, format="votable")
    if fmt == "ecsv":
        return Table.read(path, format="ascii.ecsv")
    if fmt == "cds":
        readme = path.parent / "ReadMe"
        if readme.is_file() and readme != path:
            return Table.read(path, format="ascii.cds", readme=str(readme))
        return Table.read(path, format="ascii.cds")
    if fmt == "tsv":
        return Table.read(path, format="ascii.tab", comment="#", **_tsv_options(path))
    return Table.read(path, format="ascii.csv", comment="#")


_TRUE, _FALSE = {"true", "t", "1", "yes", "y"}, {"false", "f", "0", "no", "n", ""}


def logical_column(table: Table, name: str, path, what: str) -> None:
    """Column ``name`` as bool in place: text formats carry FITS logicals as True/False, T/F
    or 1/0; another value raises :class:`CatalogError` naming the file, column and row."""
    values = table[name]
    if values.dtype.kind == "b":
        return
    if values.dtype.kind in "iuf":
        table[name] = np.asarray(values, float) != 0
        return
    out = np.zeros(len(values), bool)
    for i, v in enumerate(np.asarray(values).astype(str).tolist()):
        text = v.strip().lower()
        if text not in _TRUE | _FALSE:
            raise CatalogError(
                f"{path}: {what} column {name!r} row {i + 1}: {v!r} is not a logical value"
            )
        out[i] = text in _TRUE
    table[name] = out


def file_label(path: str | Path) -> str:
    """A catalogue's label: its file name without compression and table suffixes."""
    name = Path(path).name
    for suffix in (".gz", ".bz2", ".xz", ".fz"):
        name = name.removesuffix(suffix)
    stem, dot, ext = name.rpartition(".")
    known = {"fits", "fit", "fts", "vot", "xml", "votable", "ecsv", "csv", "tsv", "dat", "txt", "mrt"}
    return stem if dot and ext.lower() in known else name


def read_table(path: str | Path, what: str = "catalogue") -> Table:
    """Read the catalogue file ``path`` in whichever format :func:`sniff_format` finds."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: {what} not found")
    fmt = sniff_format(path)
    try:
        with warnings.catch_warnings():
            for category in (UnitsWarning, VOWarning, AstropyWarning):
                warnings.simplefilter("ignore", category)
            table = _read(path, fmt)
    except Exception as exc:  # noqa: BLE001 - astropy raises many types; re-raised with the file
        raise CatalogError(f"{path}: cannot read {what} as {fmt.upper()}: {exc}") from exc
    table.convert_bytestring_to_unicode()
    return table
