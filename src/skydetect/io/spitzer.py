"""Spitzer mosaics on disk: field names, WCS and pixel scale, aligned fields, mosaic pairs.

Galactic-plane fields are named by the GLIMPSE tile code of their centre (``01500+0000`` =
l 15°, b 0°) and their files carry the real names ``GLM_<field>_mosaic_I4.fits`` /
``MPG_<field>_mosaic_M1.fits``. Any other 8 µm + 24 µm pair with a celestial WCS (Cygnus X,
the LMC, NGC 628; Galactic or equatorial) is read the same way by :func:`align_field`.

An aligned field is a :class:`SpitzerField`: both bands on the 8 µm grid, channel order
(24 µm, 8 µm), MJy/sr; the pixel scale is always read from the header. Without a 24 µm
mosaic (8 µm-only mode) the 24 µm channel is all NaN: the preprocessing turns a channel
without data into zeros, so the network sees an empty 24 µm input. Several 24 µm files
covering one 8 µm field (MIPSGAL's 1° tiles under a 3° GLIMPSE tile) are mosaicked onto its
grid (``reproject.mosaicking.reproject_and_coadd``). The aligned field keeps the per-pixel
24 µm coverage (``cover24``: real 24 µm data there; HDU ``COVER24``): the pixels without it
are NaN, filled with the local background by the preprocessing like any NaN.
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

PARTIAL_COVER = 0.99  # 24 µm coverage below which aligning a field warns (saturated pixels aside)

CHANNELS = ("24um", "8um")
EXTNAMES = ("M24", "I8")
MASK_EXTNAME = "BUBBLEMASK"
COVER_EXTNAME = "COVER24"
FIELD_RE = re.compile(r"^(\d{5})([+-])(\d{4})$")
# a MIPSGAL 24 µm tile: 1° in l centred on l = llll / 10, at b = +0.5° (p) or -0.5° (n)
MIPSGAL_TILE_RE = re.compile(r"^MG(\d{4})([pn])005_024\.fits$")
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


def mipsgal_tiles(field: str) -> list[str]:
    """The published MIPSGAL 24 µm tiles under a 3° GLIMPSE field: 1° wide in l, centred on
    l - 1, l, l + 1 and b = -0.5°, +0.5° (``MG<10 l>n005_024.fits``, ``...p005...``)."""
    glon, _ = field_center(field)
    lon = int(round(glon))
    return [
        f"MG{10 * ((lon + d) % 360):04d}{hemisphere}005_024.fits"
        for d in (-1, 0, 1)
        for hemisphere in ("n", "p")
    ]


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
    cover24: np.ndarray | None = None  # (H, W) bool: real 24 µm data (None: finite 24 µm)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape[1:])

    @property
    def coverage_24(self) -> np.ndarray:
        """(H, W) bool: pixels with real 24 µm data (the stored coverage, else finite 24 µm)."""
        if self.cover24 is not None:
            return np.asarray(self.cover24, bool)
        return np.isfinite(self.data[0])


def write_field(path: str | os.PathLike, field: SpitzerField) -> None:
    """Write an aligned field: HDU 1 ``M24``, HDU 2 ``I8`` (same WCS), float32, MJy/sr; with
    a mask, HDU ``BUBBLEMASK`` (uint8); with a 24 µm coverage, HDU ``COVER24`` (uint8)."""
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
    if field.cover24 is not None:
        header = field.wcs.celestial.to_header()
        header["COMMENT"] = "1 = real 24 um data (0: no 24 um file covers it, or NaN there)"
        hdus.append(
            fits.ImageHDU(field.cover24.astype(np.uint8), header=header, name=COVER_EXTNAME)
        )
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
            cover = np.asarray(hdul[COVER_EXTNAME].data, bool) if COVER_EXTNAME in names else None
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
        cover24=cover,
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


def align_field(i4_path: str | os.PathLike, m1_path, field: str) -> SpitzerField:
    """Both bands on the 8 µm grid: the 24 µm file (``reproject_interp``; the WCS frames may
    differ) or, given a list of several (e.g. MIPSGAL's 1° tiles), their mosaic
    (``reproject_and_coadd``, mean where they overlap); NaN = no data, and ``cover24`` the
    pixels with real 24 µm data. ``m1_path=None`` (8 µm-only): the 24 µm channel is NaN."""
    i8, h8 = read_mosaic(i4_path, "8 µm")
    w8 = WCS(h8).celestial
    pixel = pixel_scale_arcsec(h8, str(i4_path))
    if m1_path is None:
        m24_on_8 = np.full(i8.shape, np.nan, np.float32)
    else:
        paths = [m1_path] if isinstance(m1_path, str | os.PathLike) else list(m1_path)
        if not paths:
            raise SpitzerError(f"{i4_path}: an empty list of 24 µm files")
        m24_on_8 = mosaic_24(paths, i4_path, i8, w8)
    return SpitzerField(
        np.stack([m24_on_8, i8]), w8, pixel, field, None, cover24=np.isfinite(m24_on_8)
    )


def mosaic_24(paths, i4_path, i8: np.ndarray, w8: WCS) -> np.ndarray:
    """The 24 µm file(s) ``paths`` on the 8 µm grid ``w8`` (shape of ``i8``), NaN where none
    has data; fails naming the files when none overlaps the 8 µm mosaic."""
    # lazy: reproject takes ~0.6 s to import; only the alignment step needs it
    from reproject import reproject_interp
    from reproject.mosaicking import reproject_and_coadd

    inputs = []
    for path in paths:
        m24, h24 = read_mosaic(path, "24 µm")
        if m24.shape == i8.shape and np.array_equal(m24, i8, equal_nan=True):
            raise SpitzerError(
                f"{path} holds the same image as {i4_path}: the 24 µm and 8 µm mosaics "
                "must be different bands"
            )
        pixel_scale_arcsec(h24, str(path))  # fails early on a header without a scale
        inputs.append((m24, WCS(h24).celestial))
    if len(inputs) == 1:
        out, footprint = reproject_interp(inputs[0], w8, shape_out=i8.shape)
    else:
        out, footprint = reproject_and_coadd(
            inputs,
            w8,
            shape_out=i8.shape,
            reproject_function=reproject_interp,
            combine_function="mean",
            blank_pixel_value=np.nan,
        )
    out = np.where(footprint > 0, out, np.nan).astype(np.float32)
    if not np.isfinite(out).any():
        names = ", ".join(str(p) for p in paths)
        raise SpitzerError(
            f"{names}: the 24 µm mosaic does not overlap {i4_path} (no 24 µm data falls "
            "on the 8 µm grid)"
        )
    covered = np.isfinite(out).mean()
    if covered < PARTIAL_COVER:
        log.warning(
            "%s: 24 µm data cover %.1f %% of the 8 µm grid (%d file(s)); the rest is NaN",
            i4_path, 100 * covered, len(paths),
        )
    return out


def write_mosaic(path: str | os.PathLike, hdu: fits.PrimaryHDU) -> None:
    with atomic_path(path) as tmp:
        fits.HDUList([hdu]).writeto(tmp, overwrite=True)
