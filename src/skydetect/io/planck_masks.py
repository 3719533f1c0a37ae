"""HEALPix mask files: the published Planck HFI masks, and the masks this workflow writes.

Published layout (Planck Legacy Archive, R2.00 HFI masks), read by :func:`read_mask_columns`:
a FITS binary table in extension 1, header ``ORDERING`` (RING or NESTED), ``NSIDE``
(``PIXTYPE = 'HEALPIX'``, ``COORDSYS`` Galactic where given), one column per mask:

- ``HFI_Mask_GalPlane-apo0_2048_R2.00.fits``: GAL020 GAL040 GAL060 GAL070 GAL080 GAL090
  GAL097 GAL099 (each keeps that percentage of the sky, outside the Galactic plane);
- ``HFI_Mask_PointSrc_2048_R2.00.fits``: F100 F143 F217 F353 F545 F857 (holes around each
  channel's compact sources).

A column may hold one pixel per row or a fixed-length vector per row (pixels in row order).
Values are 1 where the sky is kept, 0 where it is masked (the apodised masks in between;
kept means > 0.5). Several columns combine into one mask kept only where all keep it.

:func:`write_mask` writes the workflow's masks (results/masks/*.fits): the same layout, RING,
one ``uint8`` column ``MASK`` (1 kept, 0 masked); :func:`read_mask` reads any file of the
published layout back as a RING bool array (True = kept).
"""

from __future__ import annotations

from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

from skydetect.io.atomic import atomic_path

GALACTIC_COLUMNS = ("GAL020", "GAL040", "GAL060", "GAL070", "GAL080", "GAL090", "GAL097",
                    "GAL099")  # fmt: skip
POINT_SOURCE_COLUMNS = ("F100", "F143", "F217", "F353", "F545", "F857")
MASK_COLUMN = "MASK"
_GALACTIC = {"G", "GAL", "GALACTIC"}


class MaskFormatError(ValueError):
    """A mask file that is missing or not in the published HEALPix layout."""


def _header_nside_ordering(h, path: Path) -> tuple[int, str]:
    if str(h.get("PIXTYPE", "HEALPIX")).strip().upper() != "HEALPIX":
        raise MaskFormatError(f"{path}: PIXTYPE = {h['PIXTYPE']!r}, expected 'HEALPIX'")
    ordering = str(h.get("ORDERING", "")).strip().upper()
    if ordering not in ("RING", "NESTED"):
        raise MaskFormatError(
            f"{path}: header keyword ORDERING = {h.get('ORDERING')!r}, expected RING or NESTED"
        )
    coordsys = str(h.get("COORDSYS", "GALACTIC")).strip().upper()
    if coordsys not in _GALACTIC:
        raise MaskFormatError(f"{path}: COORDSYS = {coordsys!r}, expected GALACTIC")
    if "NSIDE" not in h or not hp.isnsideok(int(h["NSIDE"])):
        raise MaskFormatError(f"{path}: header keyword NSIDE missing or not a power of 2")
    return int(h["NSIDE"]), ordering


def read_mask_columns(path, columns) -> np.ndarray:
    """Columns ``columns`` of the mask file ``path`` combined into one RING bool map (True =
    kept by every column). Raises :class:`MaskFormatError` naming the file and the column."""
    path = Path(path)
    columns = [str(c) for c in ([columns] if isinstance(columns, str) else columns)]
    if not columns:
        raise MaskFormatError(f"{path}: no mask column chosen")
    if not path.exists():
        raise MaskFormatError(f"{path}: mask file not found")
    try:
        hdul = fits.open(path, memmap=True)
    except OSError as err:
        raise MaskFormatError(f"{path}: not a readable FITS file ({err})") from err
    with hdul:
        if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
            raise MaskFormatError(f"{path}: extension 1 is not a binary table")
        hdu = hdul[1]
        nside, ordering = _header_nside_ordering(hdu.header, path)
        names = {n.upper(): n for n in hdu.columns.names}
        keep = np.ones(hp.nside2npix(nside), dtype=bool)
        for column in columns:
            if column.upper() not in names:
                raise MaskFormatError(
                    f"{path}: mask column {column!r} not found "
                    f"(columns: {', '.join(hdu.columns.names)})"
                )
            values = np.asarray(hdu.data[names[column.upper()]], dtype=np.float32).ravel()
            if values.size != keep.size:
                raise MaskFormatError(
                    f"{path}: column {column!r} has {values.size} pixels, NSIDE = {nside} "
                    f"needs {keep.size}"
                )
            if not np.isfinite(values).all():
                raise MaskFormatError(f"{path}: column {column!r} has non-finite values")
            keep &= values > 0.5
    return hp.reorder(keep, n2r=True) if ordering == "NESTED" else keep


def read_mask(path) -> np.ndarray:
    """A mask written by :func:`write_mask` (column ``MASK``): RING bool map, True = kept."""
    return read_mask_columns(path, [MASK_COLUMN])


def write_mask(path, keep_ring: np.ndarray, extra_header: dict | None = None) -> None:
    """Write a RING bool map (True = kept) as a one-column ``uint8`` HEALPix table."""
    keep_ring = np.asarray(keep_ring, dtype=bool)
    nside = hp.npix2nside(keep_ring.size)
    col = fits.Column(name=MASK_COLUMN, format="B", array=keep_ring.astype(np.uint8))
    hdu = fits.BinTableHDU.from_columns([col], name="MASK")
    h = hdu.header
    h["PIXTYPE"] = ("HEALPIX", "HEALPIX pixelisation")
    h["ORDERING"] = ("RING", "Pixel ordering scheme, either RING or NESTED")
    h["COORDSYS"] = ("GALACTIC", "Ecliptic, Galactic or Celestial (equatorial)")
    h["NSIDE"] = (nside, "Resolution parameter of HEALPIX")
    h["FIRSTPIX"] = (0, "First pixel # (0 based)")
    h["LASTPIX"] = (keep_ring.size - 1, "Last pixel # (0 based)")
    h["INDXSCHM"] = ("IMPLICIT", "Indexing: IMPLICIT or EXPLICIT")
    h["OBJECT"] = ("FULLSKY", "Sky coverage")
    h["MASKVAL"] = ("1 = kept, 0 = masked", "Meaning of the MASK column")
    h["FSKY"] = (float(keep_ring.mean()), "Fraction of the sky kept")
    for key, value in (extra_header or {}).items():
        h[key] = value
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)
