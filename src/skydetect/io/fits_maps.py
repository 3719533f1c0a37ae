"""HEALPix map files: writing the real Planck PR3 layout, reading and checking any such map.

PR3 layout (what :func:`write_pr3_map` writes and what the real HFI maps look like): a FITS
binary table in extension 1 with first column ``I_STOKES`` (``TUNIT1`` = K_CMB, MJy/sr or y),
header ``PIXTYPE='HEALPIX'``, ``ORDERING='NESTED'``, ``COORDSYS='GALACTIC'``, ``NSIDE``,
``FIRSTPIX``, ``LASTPIX``, ``INDXSCHM='IMPLICIT'``, ``OBJECT='FULLSKY'``.

:func:`read_and_check` reads such a file (real, downloaded, local or mock), verifies its
header against the band (:data:`PR3_UNITS`) and returns the map in the
pipeline's convention — RING ordering, native float32 — together with a report of what was
found and converted. Each conversion is done once and explicitly. :func:`write_checked_map`
writes that convention (the healpy layout) and :func:`read_checked_map` reads it back for
later stages. Problems raise :class:`MapFormatError` naming the file and the keyword.
"""

from __future__ import annotations

from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

from skydetect.io.atomic import atomic_path
from skydetect.io.content import image_problem
from skydetect.io.map_units import (
    NOT_Y,
    PLAUSIBLE_SCATTER,
    PR3_UNITS,
    Y_BLANK,
    canonical_unit,
    robust_scatter,
)


class MapFormatError(ValueError):
    """A map file whose header or data does not match what the pipeline expects."""


_COORD_ALIASES = {"GALACTIC": "GALACTIC", "G": "GALACTIC"}


# --------------------------------------------------------------------------- writing
def write_pr3_map(
    path: str | Path,
    m_ring: np.ndarray,
    unit: str,
    ordering: str = "NESTED",
    dtype=np.float32,
    coordsys: str = "GALACTIC",
    extra_header: dict | None = None,
) -> None:
    """Write a RING-ordered map in the Planck PR3 layout (converted to ``ordering``).

    One pixel per table row, column ``I_STOKES`` with ``TUNIT1 = unit``. ``coordsys`` and
    ``dtype`` are parameters only so that tests can write deliberately wrong files.
    """
    path = Path(path)
    m_ring = np.asarray(m_ring)
    nside = hp.npix2nside(m_ring.size)
    ordering = ordering.upper()
    if ordering == "NESTED":
        data = hp.reorder(m_ring, r2n=True)
    elif ordering == "RING":
        data = m_ring
    else:
        raise ValueError(f"ordering must be NESTED or RING, got {ordering!r}")
    fmt = "E" if np.dtype(dtype) == np.float32 else "D"
    col = fits.Column(name="I_STOKES", format=fmt, unit=unit, array=data.astype(dtype, copy=False))
    hdu = fits.BinTableHDU.from_columns([col], name="FREQ-MAP")
    h = hdu.header
    h["PIXTYPE"] = ("HEALPIX", "HEALPIX pixelisation")
    h["ORDERING"] = (ordering, "Pixel ordering scheme, either RING or NESTED")
    h["COORDSYS"] = (coordsys, "Ecliptic, Galactic or Celestial (equatorial)")
    h["NSIDE"] = (nside, "Resolution parameter of HEALPIX")
    h["FIRSTPIX"] = (0, "First pixel # (0 based)")
    h["LASTPIX"] = (12 * nside * nside - 1, "Last pixel # (0 based)")
    h["INDXSCHM"] = ("IMPLICIT", "Indexing: IMPLICIT or EXPLICIT")
    h["OBJECT"] = ("FULLSKY", "Sky coverage")
    for key, value in (extra_header or {}).items():
        h[key] = value
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)


def write_checked_map(path: str | Path, m_ring: np.ndarray, unit: str, extra_header=None) -> None:
    """Write the pipeline convention: healpy layout, RING, float32, GALACTIC, ``TUNIT1 = unit``."""
    with atomic_path(path) as tmp:
        hp.write_map(
            str(tmp),
            np.asarray(m_ring, dtype=np.float32),
            nest=False,
            coord="G",
            column_names=["I_STOKES"],
            column_units=unit,
            dtype=np.float32,
            overwrite=True,
            extra_header=list((extra_header or {}).items()),
        )
        with fits.open(tmp, mode="update") as hdul:  # healpy writes 'G'; spell it out
            hdul[1].header["COORDSYS"] = "GALACTIC"


# --------------------------------------------------------------------------- reading
def _column_index(hdu: fits.BinTableHDU, path: Path, column: str | None) -> int:
    names = [n.upper() for n in hdu.columns.names]
    if column is not None:
        if column.upper() not in names:
            raise MapFormatError(
                f"{path}: column {column!r} not found (TTYPEn: {', '.join(hdu.columns.names)})"
            )
        return names.index(column.upper())
    for candidate in ("I_STOKES", "I", "TEMPERATURE", "FULL"):
        if candidate in names:
            return names.index(candidate)
    raise MapFormatError(
        f"{path}: no I_STOKES (or I/TEMPERATURE/FULL) column in extension 1 "
        f"(TTYPEn: {', '.join(hdu.columns.names)})"
    )


def _check_header(h, path: Path, nside: int | None) -> tuple[str, str, int]:
    """(ORDERING, COORDSYS, NSIDE) of a HEALPix table header, checked."""
    pixtype = str(h.get("PIXTYPE", "HEALPIX")).strip().upper()
    if pixtype != "HEALPIX":
        raise MapFormatError(f"{path}: PIXTYPE = {pixtype!r}, expected 'HEALPIX'")
    if "ORDERING" not in h:
        raise MapFormatError(f"{path}: header keyword ORDERING missing (RING or NESTED)")
    ordering = str(h["ORDERING"]).strip().upper()
    if ordering not in ("RING", "NESTED"):
        raise MapFormatError(f"{path}: ORDERING = {ordering!r}, expected RING or NESTED")
    if "COORDSYS" not in h:
        raise MapFormatError(f"{path}: header keyword COORDSYS missing (expected GALACTIC)")
    coordsys = str(h["COORDSYS"]).strip().upper()
    if coordsys not in _COORD_ALIASES:
        raise MapFormatError(
            f"{path}: COORDSYS = {coordsys!r}, expected 'GALACTIC' (the pipeline works in "
            "Galactic coordinates; rotate the map first)"
        )
    if "NSIDE" not in h:
        raise MapFormatError(f"{path}: header keyword NSIDE missing")
    file_nside = int(h["NSIDE"])
    if not hp.isnsideok(file_nside):
        raise MapFormatError(f"{path}: NSIDE = {file_nside} is not a power of 2")
    if nside is not None and file_nside != nside:
        raise MapFormatError(
            f"{path}: NSIDE = {file_nside} in the header, but config key 'planck.nside' is "
            f"{nside} (the tiling and the patches assume it): set planck.nside: {file_nside}"
        )
    return ordering, coordsys, file_nside


def _check_unit(h, unit_key: str, colname: str, path: Path, band: str, conversions: list):
    """(unit found, canonical unit, factor to it) of column ``colname`` of file ``path``
    (header ``h``) for ``band``; appends the y-map's assumed unit to ``conversions``."""
    expected_unit = PR3_UNITS[str(band)]
    unit_found = h.get(unit_key)
    unit_found = None if unit_found is None else str(unit_found).strip()
    canon, factor = canonical_unit(unit_found)
    if band == "y" and (unit_found is None or unit_found.lower() in Y_BLANK):
        canon, factor = "y", 1.0
        conversions.append(
            f"{unit_key} {'missing' if unit_found is None else repr(unit_found)}: "
            "dimensionless, assumed Compton y"
        )
    if unit_found is not None and unit_found.strip().upper() == "K" and expected_unit == "K_CMB":
        raise MapFormatError(
            f"{path}: {unit_key} = 'K' for column {colname} is ambiguous (K_CMB or K_RJ?): "
            f"band {band} maps must be in thermodynamic CMB units; if the file is, set "
            f"{unit_key} = 'K_CMB'"
        )
    if band == "y" and (canon in NOT_Y or (unit_found or "").strip().upper() == "K"):
        raise MapFormatError(
            f"{path}: {unit_key} = {unit_found!r} for column {colname} is a temperature or "
            "intensity unit, but band y is the dimensionless Compton-y map (accepted units: "
            "'', 'y', 'y_sz', 'Compton-y', 'none')"
        )
    if canon is None or canon != expected_unit:
        raise MapFormatError(
            f"{path}: {unit_key} = {unit_found!r} for column {colname}, expected "
            f"{expected_unit!r} for band {band}"
        )
    return unit_found, canon, factor


def _read_column(hdu, icol: int, colname: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(hdu.data.field(icol)).reshape(-1)
    except Exception as exc:  # noqa: BLE001 - truncated payload, bad TFORM: name the file
        raise MapFormatError(
            f"{path}: the data of column {colname} cannot be read ({type(exc).__name__}: "
            f"{exc}); the file is truncated or corrupt (compare its size with the "
            "archive's and download it again)"
        ) from exc


def _read_table(path: Path, band: str, nside: int | None, column: str | None, conversions):
    """Check the header of extension 1 and read the map's column: a dict of the raw values,
    the column, its unit and the header's ordering, coordinates and NSIDE."""
    try:
        hdul = fits.open(path, memmap=True)
    except OSError as exc:
        raise MapFormatError(f"{path}: not a readable FITS file: {exc}") from exc
    with hdul:
        if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
            raise MapFormatError(f"{path}: extension 1 is not a BINTABLE (XTENSION)")
        hdu = hdul[1]
        ordering, coordsys, file_nside = _check_header(hdu.header, path, nside)
        icol = _column_index(hdu, path, column)
        colname = hdu.columns.names[icol]
        unit_key = f"TUNIT{icol + 1}"
        unit_found, canon, factor = _check_unit(
            hdu.header, unit_key, colname, path, band, conversions
        )
        raw = _read_column(hdu, icol, colname, path)
    return {
        "raw": raw,
        "colname": colname,
        "unit_key": unit_key,
        "unit_found": unit_found,
        "canon": canon,
        "factor": factor,
        "ordering": ordering,
        "coordsys": coordsys,
        "nside": file_nside,
    }


def _checked_values(t: dict, path: Path, band: str, max_bad_fraction: float, conversions):
    """The column's values as float64 in its canonical unit, checked for length, type, bad
    pixels, constant content and a plausible scatter: (values, bad mask, NaN count, bad
    fraction, robust scatter)."""
    raw, colname, canon = t["raw"], t["colname"], t["canon"]
    npix = 12 * t["nside"] ** 2
    if raw.size != npix:
        raise MapFormatError(
            f"{path}: NSIDE = {t['nside']} implies {npix} pixels but column {colname} has "
            f"{raw.size} values"
        )
    if raw.dtype.kind != "f":
        raise MapFormatError(f"{path}: column {colname} has type {raw.dtype}, expected float")
    # One explicit copy: native-endian float64 for the conversions below.
    data = raw.astype(np.float64)
    bad = ~np.isfinite(data) | (data < -1e30)  # NaN or UNSEEN (-1.6375e30)
    n_nan = int(np.count_nonzero(~np.isfinite(data)))
    bad_fraction = float(np.count_nonzero(bad)) / npix
    if bad_fraction > max_bad_fraction:
        raise MapFormatError(
            f"{path}: {bad_fraction:.1%} of the pixels are NaN/UNSEEN "
            f"(limit {max_bad_fraction:.1%}, column {colname})"
        )
    problem = image_problem(data, bad=bad)
    if problem:
        raise MapFormatError(f"{path}: column {colname} {problem}")
    if t["factor"] != 1.0:
        data[~bad] *= t["factor"]
        conversions.append(f"unit {t['unit_found']} -> {canon} (x{t['factor']:g})")
    scatter = robust_scatter(data[~bad])
    lo, hi = PLAUSIBLE_SCATTER[canon]
    if not lo <= scatter <= hi:
        raise MapFormatError(
            f"{path}: column {colname} scatters by {scatter:.3g} {canon} over the sky (robust "
            f"rms), outside the plausible {lo:g}..{hi:g} {canon} of a band-{band} map: the "
            f"values are not in the unit the header says ({t['unit_key']} = {t['unit_found']!r})"
        )
    return data, bad, n_nan, bad_fraction, scatter


def read_and_check(
    path: str | Path,
    band: str,
    nside: int | None = None,
    column: str | None = None,
    max_bad_fraction: float = 0.1,
) -> tuple[np.ndarray, dict]:
    """Read a HEALPix map file, check it against ``band`` and convert it to RING float32.

    Checks, each failing with :class:`MapFormatError` naming the file and keyword:
    extension 1 is a BINTABLE; ``PIXTYPE`` (if present) is HEALPIX; ``ORDERING`` is RING or
    NESTED; ``COORDSYS`` is Galactic; ``NSIDE`` matches the data length (and ``nside`` if
    given, i.e. ``planck.nside``); ``TUNITn`` is the band's unit (a scaled spelling such as
    uK_CMB is converted and recorded; a bare ``K`` is refused as ambiguous, K_CMB or K_RJ; the
    y-map's dimensionless unit may be spelled '', 'y', 'y_sz', 'Compton-y' or 'none', in any
    case, and a temperature or intensity unit on it is refused); the data can be read (a
    truncated file is named); the fraction of NaN/UNSEEN pixels is at most
    ``max_bad_fraction``; the valid pixels are not all equal. NaN pixels become ``hp.UNSEEN``.

    Returns ``(map_ring_float32, report)``.
    """
    path = Path(path)
    if not path.exists():
        raise MapFormatError(f"{path}: map file not found")
    if str(band) not in PR3_UNITS:
        raise KeyError(f"unknown band {band!r}: expected one of {', '.join(PR3_UNITS)}")
    conversions: list[str] = []
    t = _read_table(path, band, nside, column, conversions)
    dtype_found = t["raw"].dtype.newbyteorder("=").name
    data, bad, n_nan, bad_fraction, scatter = _checked_values(
        t, path, band, max_bad_fraction, conversions
    )
    data[bad] = hp.UNSEEN
    if n_nan:
        conversions.append(f"{n_nan} NaN pixels -> UNSEEN")
    if t["ordering"] == "NESTED":
        data = hp.reorder(data, n2r=True)
        conversions.append("NESTED -> RING")
    if dtype_found != "float32":
        conversions.append(f"{dtype_found} -> float32")
    out = data.astype(np.float32)
    good = out != np.float32(hp.UNSEEN)  # in RING order now
    report = {
        "file": str(path),
        "band": band,
        "column": t["colname"],
        "nside": t["nside"],
        "npix": 12 * t["nside"] ** 2,
        "ordering_found": t["ordering"],
        "coordsys_found": t["coordsys"],
        "dtype_found": dtype_found,
        "unit_found": t["unit_found"],
        "unit": t["canon"],
        "bad_fraction": bad_fraction,
        "n_nan": n_nan,
        "n_unseen": int(np.count_nonzero(bad)) - n_nan,
        "conversions": conversions,
        "ordering": "RING",
        "dtype": "float32",
        "stats": {
            "robust_rms": scatter,
            "median": float(np.median(out[good])) if good.any() else None,
            "std": float(np.std(out[good], dtype=np.float64)) if good.any() else None,
        },
    }
    return out, report


def read_checked_map(path: str | Path, unit: str | None = None) -> tuple[np.ndarray, dict]:
    """Read a map written by :func:`write_checked_map` (RING float32); return (map, header info).

    ``unit`` (optional) is compared with ``TUNIT1``. Raises :class:`MapFormatError` when the
    file is not in the checked convention.
    """
    path = Path(path)
    if not path.exists():
        raise MapFormatError(f"{path}: checked map not found")
    with fits.open(path) as hdul:
        h = hdul[1].header
        ordering = str(h.get("ORDERING", "")).strip().upper()
        found_unit = str(h.get("TUNIT1", "")).strip()
        coordsys = str(h.get("COORDSYS", "")).strip().upper()
    if ordering != "RING":
        raise MapFormatError(f"{path}: ORDERING = {ordering!r}, checked maps are RING")
    if _COORD_ALIASES.get(coordsys) != "GALACTIC":
        raise MapFormatError(f"{path}: COORDSYS = {coordsys!r}, checked maps are GALACTIC")
    if unit is not None and found_unit != unit:
        raise MapFormatError(f"{path}: TUNIT1 = {found_unit!r}, expected {unit!r}")
    m = hp.read_map(str(path), field=0, nest=False, dtype=np.float32)
    return m, {"nside": hp.npix2nside(m.size), "unit": found_unit, "ordering": "RING"}
