"""Spitzer mosaics on disk: field names, WCS and pixel scale, aligned fields, mosaic pairs.

Galactic-plane fields are named by the GLIMPSE tile code of their centre (``01500+0000`` =
l 15°, b 0°) and their files carry the real names ``GLM_<field>_mosaic_I4.fits`` /
``MPG_<field>_mosaic_M1.fits``. Any other 8 µm + 24 µm pair with a celestial WCS (Cygnus X,
the LMC, NGC 628; Galactic or equatorial) is read the same way by :func:`align_field`.

An aligned field is a :class:`SpitzerField`: both bands on the 8 µm grid, channel order
(24 µm, 8 µm), MJy/sr; the pixel scale is always read from the header. Without a 24 µm
mosaic (8 µm-only mode) the 24 µm channel is all NaN: the preprocessing turns a channel
without data into zeros, so the network sees an empty 24 µm input.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from dataclasses import field as dc_field

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from skydetect.io.atomic import atomic_path
from skydetect.io.content import image_problem

log = logging.getLogger(__name__)

CHANNELS = ("24um", "8um")
EXTNAMES = ("M24", "I8")
MASK_EXTNAME = "BUBBLEMASK"
FIELD_RE = re.compile(r"^(\d{5})([+-])(\d{4})$")
MJY_SR = ("mjy/sr", "mjysr-1", "mjy/steradian", "mjy/str")


class SpitzerError(ValueError):
    """A mosaic file that cannot be used (layout, unit, WCS), named in the message."""


def wrap_glon(glon) -> np.ndarray:
    """Galactic longitude in (-180, 180] degrees (359.5 -> -0.5)."""
    g = np.mod(np.asarray(glon, dtype=float), 360.0)
    return np.where(g > 180.0, g - 360.0, g)


# ------------------------------------------------------------------ field names
def field_name(glon: float, glat: float = 0.0) -> str:
    """GLIMPSE tile code of a field centre: ``field_name(15) == '01500+0000'``."""
    lcode = int(round(float(np.mod(glon, 360.0)) * 100)) % 36000
    bcode = int(round(abs(glat) * 100))
    return f"{lcode:05d}{'-' if glat < 0 else '+'}{bcode:04d}"


def field_center(field: str) -> tuple[float, float]:
    """(glon in (-180, 180], glat) of a field code."""
    m = FIELD_RE.match(field)
    if not m:
        raise SpitzerError(f"field {field!r} is not a GLIMPSE tile code like '01500+0000'")
    glon = float(wrap_glon(int(m.group(1)) / 100.0))
    glat = int(m.group(3)) / 100.0 * (-1 if m.group(2) == "-" else 1)
    return glon, glat


def glimpse_filename(field: str) -> str:
    return f"GLM_{field}_mosaic_I4.fits"


def mipsgal_filename(field: str) -> str:
    return f"MPG_{field}_mosaic_M1.fits"


# ------------------------------------------------------------------ WCS helpers
def field_wcs(
    glon: float,
    glat: float,
    width_deg: float,
    height_deg: float,
    pixel_arcsec: float,
    projection: str = "CAR",
) -> tuple[WCS, tuple[int, int]]:
    """A Galactic WCS centred on (glon, glat) and the (ny, nx) shape covering the field."""
    pix = pixel_arcsec / 3600.0
    nx = int(np.ceil(width_deg / pix))
    ny = int(np.ceil(height_deg / pix))
    w = WCS(naxis=2)
    w.wcs.ctype = [f"GLON-{projection}", f"GLAT-{projection}"]
    w.wcs.crval = [float(np.mod(glon, 360.0)), float(glat)]
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    w.wcs.cdelt = [-pix, pix]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.set()
    return w, (ny, nx)


def pixel_scale_arcsec(header: fits.Header, source: str = "header") -> float:
    """Pixel scale (arcsec) from CD / CDELT, or PIXSCAL1 when neither is present."""
    has_cd = any(k in header for k in ("CD1_1", "CD2_2", "PC1_1"))
    if has_cd or "CDELT1" in header:
        scales = proj_plane_pixel_scales(WCS(header).celestial) * 3600.0
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            raise SpitzerError(f"{source}: invalid pixel scale from CD/CDELT: {scales}")
        if abs(scales[0] - scales[1]) > 0.01 * scales.max():
            log.warning("%s: non-square pixels %s arcsec; using the mean", source, scales)
        return float(np.sqrt(scales[0] * scales[1]))
    if "PIXSCAL1" in header:
        return abs(float(header["PIXSCAL1"]))
    raise SpitzerError(f"{source}: no CD, CDELT or PIXSCAL1 keyword: pixel scale unknown")


# ------------------------------------------------------------------ aligned fields
@dataclass
class SpitzerField:
    """Both bands on one grid: ``data`` (2, H, W) float32 MJy/sr, channels (24 µm, 8 µm)."""

    data: np.ndarray
    wcs: WCS
    pixel_arcsec: float
    field: str
    path: str | None = None
    header: fits.Header = dc_field(default_factory=fits.Header)
    mask: np.ndarray | None = None  # (H, W) bool: catalogue-bubble discs (masked fields)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape[1:])


def write_field(path: str | os.PathLike, field: SpitzerField) -> None:
    """Write an aligned field: HDU 1 ``M24``, HDU 2 ``I8`` (same WCS), float32, MJy/sr; with
    a mask, HDU 3 ``BUBBLEMASK`` (uint8)."""
    if field.data.ndim != 3 or field.data.shape[0] != 2:
        raise SpitzerError(f"field for {path}: data must be (2, H, W), got {field.data.shape}")
    primary = fits.PrimaryHDU()
    primary.header["FIELD"] = (field.field, "name of the field (GLIMPSE tile code or mosaic)")
    hdus = [primary]
    for i, name in enumerate(EXTNAMES):
        header = field.wcs.celestial.to_header()
        header["BUNIT"] = "MJy/sr"
        header["PIXSCALE"] = (field.pixel_arcsec, "[arcsec] pixel scale")
        header["CHANNEL"] = CHANNELS[i]
        hdus.append(fits.ImageHDU(field.data[i].astype(np.float32), header=header, name=name))
    if field.mask is not None:
        header = field.wcs.celestial.to_header()
        header["COMMENT"] = "1 = inside a catalogue-bubble disc (never part of a negative window)"
        hdus.append(fits.ImageHDU(field.mask.astype(np.uint8), header=header, name=MASK_EXTNAME))
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)


def read_field(path: str | os.PathLike) -> SpitzerField:
    """Read a field written by :func:`write_field`, checking its layout."""
    try:
        with fits.open(path) as hdul:
            names = [h.name for h in hdul]
            for name in EXTNAMES:
                if name not in names:
                    raise SpitzerError(f"{path}: no {name} extension (found {names})")
            arrays = [np.asarray(hdul[n].data, dtype=np.float32) for n in EXTNAMES]
            header = hdul["I8"].header.copy()
            field = str(hdul[0].header.get("FIELD", ""))
            mask = np.asarray(hdul[MASK_EXTNAME].data, bool) if MASK_EXTNAME in names else None
    except OSError as err:
        raise SpitzerError(f"{path}: cannot read FITS: {err}") from err
    if arrays[0].shape != arrays[1].shape or arrays[0].ndim != 2:
        raise SpitzerError(f"{path}: M24 {arrays[0].shape} and I8 {arrays[1].shape} differ")
    return SpitzerField(
        data=np.stack(arrays),
        wcs=WCS(header).celestial,
        pixel_arcsec=pixel_scale_arcsec(header, str(path)),
        field=field,
        path=str(path),
        header=header,
        mask=mask,
    )


def _first_image(path) -> tuple[np.ndarray, fits.Header]:
    """Data and header of the first image HDU, every low-level failure named with the file."""
    try:
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.is_image and hdu.data is not None:
                    return np.squeeze(np.asarray(hdu.data, dtype=np.float32)), hdu.header.copy()
    except FileNotFoundError as err:
        raise SpitzerError(f"{path}: mosaic file not found") from err
    except OSError as err:
        raise SpitzerError(f"{path}: cannot read FITS: {err}") from err
    except (TypeError, ValueError) as err:  # numpy: "buffer is too small for requested array"
        raise SpitzerError(
            f"{path}: the image data cannot be read ({type(err).__name__}: {err}); the file is "
            "truncated or corrupt (compare its size with the archive's and download it again)"
        ) from err
    raise SpitzerError(f"{path}: no image HDU")


def read_mosaic(path, band: str = "mosaic") -> tuple[np.ndarray, fits.Header]:
    """The first 2-d image HDU of a mosaic, checked for unit, a celestial WCS and content
    (some finite, non-constant sky); ``band`` names the mosaic in messages (8 µm, 24 µm)."""
    data, header = _first_image(path)
    if data.ndim != 2:
        raise SpitzerError(f"{path}: image is {data.ndim}-d, expected 2-d")
    unit = str(header.get("BUNIT", "")).replace(" ", "").lower()
    if unit not in MJY_SR:
        raise SpitzerError(f"{path}: BUNIT is {header.get('BUNIT')!r}, expected MJy/sr")
    ctype = str(header.get("CTYPE1", ""))
    if not ctype.startswith(("GLON", "RA--", "ELON")):
        raise SpitzerError(
            f"{path}: CTYPE1 is {ctype!r}; a celestial WCS (GLON or RA) is expected"
        )
    problem = image_problem(data)
    if problem:
        raise SpitzerError(f"{path}: the {band} mosaic {problem}")
    return data, header


def align_field(
    i4_path: str | os.PathLike, m1_path: str | os.PathLike | None, field: str
) -> SpitzerField:
    """Reproject the 24 µm mosaic onto the 8 µm grid (``reproject_interp``; the WCS frames
    may differ); NaN = no data. ``m1_path=None`` (8 µm-only): the 24 µm channel is NaN."""
    from reproject import reproject_interp

    i8, h8 = read_mosaic(i4_path, "8 µm")
    w8 = WCS(h8).celestial
    pixel = pixel_scale_arcsec(h8, str(i4_path))
    if m1_path is None:
        m24_on_8 = np.full(i8.shape, np.nan, np.float32)
    else:
        m24, h24 = read_mosaic(m1_path, "24 µm")
        if m24.shape == i8.shape and np.array_equal(m24, i8, equal_nan=True):
            raise SpitzerError(
                f"{m1_path} holds the same image as {i4_path}: the 24 µm and 8 µm mosaics "
                "must be different bands"
            )
        pixel_scale_arcsec(h24, str(m1_path))  # fails early on a header without a scale
        m24_on_8, footprint = reproject_interp(
            (m24, WCS(h24).celestial), w8, shape_out=i8.shape
        )
        m24_on_8 = np.where(footprint > 0, m24_on_8, np.nan).astype(np.float32)
        if not np.isfinite(m24_on_8).any():
            raise SpitzerError(
                f"{m1_path}: the 24 µm mosaic does not overlap {i4_path} (no 24 µm data falls "
                "on the 8 µm grid)"
            )
    return SpitzerField(np.stack([m24_on_8, i8]), w8, pixel, field, None)


def write_mosaic(path: str | os.PathLike, hdu: fits.PrimaryHDU) -> None:
    with atomic_path(path) as tmp:
        fits.HDUList([hdu]).writeto(tmp, overwrite=True)
