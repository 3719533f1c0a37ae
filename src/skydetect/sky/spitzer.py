"""Mock GLIMPSE 8 µm / MIPSGAL 24 µm mosaics of a Galactic-plane field (simulation only;
reading, naming and aligning mosaics is :mod:`skydetect.io.spitzer`).

The mock (``../shared/docs/sky-model.md`` §2) draws, on the 8 µm grid (Galactic CAR):
diffuse emission rising towards b = 0 with log-normal structure on all scales (power
spectrum ∝ k^-2.8, correlated between bands), filaments, infrared dark clouds (absorption at
8 µm, weaker at 24 µm), bubbles (:mod:`skydetect.sky.bubble_mock`: MWP DR2 density by
latitude, sizes and clear fractions; each painted by :func:`paint_bubble` — clear ones a
closed 8 µm ring enclosing 24 µm emission of any strength, unclear ones broken, faint,
without 24 µm or confused), stars (denser at 8 µm), compact
bright 24 µm sources (Mira-like), bright HII regions whose saturated cores are NaN, the
beams (2″ / 6″) and white noise. The 24 µm band is then resampled onto its own TAN grid
with coarser pixels (as real MIPSGAL), so that the pipeline's reprojection is exercised.
The truth catalogue has the MWP DR2 columns (see :mod:`skydetect.bubbles.catalog`) plus
``KIND``, ``CONTRAST`` and ``STRENGTH24``; :func:`field_catalog` makes the volunteers'
catalogue of it.
"""

from __future__ import annotations

import logging

import numpy as np
from astropy.io import fits
from astropy.table import Table
from scipy import ndimage

from skydetect.io.spitzer import field_center, field_wcs
from skydetect.sky.bubble_mock import (
    UNCLEAR_KINDS,
    draw_bubbles,
    real_bubbles,
    volunteer_catalog,
)

log = logging.getLogger(__name__)

SIM_STAGE = 70  # seed component of the mock mosaics
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
SATURATION = {"8um": 2000.0, "24um": 1500.0}  # MJy/sr; brighter pixels become NaN


# ------------------------------------------------------------------ mock sky
def _power_law_field(rng, shape, index=-2.8) -> np.ndarray:
    """Gaussian random field with P(k) ∝ k^index, zero mean, unit standard deviation."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = np.inf
    amp = k ** (index / 2.0)
    noise = rng.standard_normal(shape)
    f = np.fft.irfft2(np.fft.rfft2(noise) * amp, s=shape)
    return (f - f.mean()) / f.std()


def _arc_gaps(rng, phi) -> np.ndarray:
    """Brightness factor of a broken ring: 1 or 2 gaps, 30-70 % of the circumference."""
    n_gap = int(rng.integers(1, 3))
    half = rng.uniform(0.3, 0.7) * np.pi / n_gap
    centre = rng.uniform(0, 2 * np.pi)
    out = np.ones_like(phi)
    for k in range(n_gap):
        c = centre + k * (np.pi + rng.uniform(-0.5, 0.5))
        d = np.abs(np.angle(np.exp(1j * (phi - c))))
        out *= 1.0 / (1.0 + np.exp(-(d - half) / 0.15))
    return out


def _clumps(rng, phi) -> np.ndarray:
    """Brightness factor of a confused ring: clumps from random harmonics m = 2..6."""
    g = sum(
        rng.normal() * np.cos(m * phi - rng.uniform(0, 2 * np.pi)) / np.sqrt(m) for m in range(2, 7)
    )
    f = np.exp(0.9 * g)
    return f / f.mean()


def _level(level, img, box) -> float:
    """The local level: a number, the median of ``level`` (an array) or of ``img`` in the box."""
    if level is None or np.ndim(level) > 0:
        v = np.nanmedian((img if level is None else level)[box])
        return float(v) if np.isfinite(v) else 0.0
    return float(level)


def paint_bubble(
    img8,
    img24,
    x: float,
    y: float,
    maj_px: float,
    contrast: float,
    strength24: float,
    clear: bool,
    rng,
    *,
    kind: str | None = None,
    min_px: float | None = None,
    theta_deg: float = 0.0,
    level8=None,
    level24=None,
) -> str:
    """Add one bubble, in place, to the 8 µm and 24 µm images (the same pixel grid, x
    towards lower l) at 0-based pixel (x, y); returns its kind.

    ``maj_px`` / ``min_px`` are the semi-axes (pixels; min_px None: a circle), ``theta_deg``
    the major axis from +l towards +b. The 8 µm shell (FWHM 0.2-0.4 R) peaks at ``contrast``
    x the local 8 µm level (and adds 0.15 x that, relative to the 24 µm level, at 24 µm);
    the 24 µm interior (a Gaussian of 0.3-0.6 R, sometimes with a compact central source)
    peaks at ``strength24`` x the local 24 µm level (0: none). ``level8`` / ``level24``: a
    number, an array (its median in the bubble's box) or None (the image's median there).
    ``clear``: ``ring``, a closed ring (at most 3:1 brighter on one side); otherwise
    ``kind`` (default: drawn) is ``arc`` (1-2 gaps, 30-70 % of the circumference), ``faint``
    or ``ring_no24`` (closed rings), or ``confused`` (clumpy ring, 24 µm off-centre).
    The shape's random parts come from ``rng``."""
    if kind is None:
        kind = "ring" if clear else str(rng.choice(UNCLEAR_KINDS))
    if (kind == "ring") != bool(clear) or kind not in ("ring", *UNCLEAR_KINDS):
        raise ValueError(f"bubble kind {kind!r} with clear={clear}: clear bubbles are 'ring'")
    a = float(maj_px)
    b = max(float(min_px if min_px is not None else maj_px), 0.3)
    r = int(np.ceil(1.6 * a + 4))
    ny, nx = img8.shape
    x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, nx)
    y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return kind
    box = (slice(y0, y1), slice(x0, x1))
    lev8, lev24 = _level(level8, img8, box), _level(level24, img24, box)
    th = np.deg2rad(theta_deg)
    yy, xx = np.mgrid[y0:y1, x0:x1]

    def ellipse(cx, cy):
        dl, db = -(xx - cx), (yy - cy)  # pixel x grows towards lower l
        u = dl * np.cos(th) + db * np.sin(th)
        v = -dl * np.sin(th) + db * np.cos(th)
        return np.hypot(u / a, v / b), np.arctan2(v, u)

    rho, phi = ellipse(x, y)
    width = max(rng.uniform(0.2, 0.4) * FWHM_TO_SIGMA, 0.7 / a)
    shell = np.exp(-0.5 * ((rho - 1.0) / width) ** 2)
    shell *= 1.0 + rng.uniform(0.0, 0.5) * np.cos(phi - rng.uniform(0, 2 * np.pi))
    if kind == "arc":
        shell *= _arc_gaps(rng, phi)
    elif kind == "confused":
        shell *= _clumps(rng, phi)
    amp8 = contrast * lev8
    img8[box] += amp8 * shell
    img24[box] += 0.15 * contrast * lev24 * shell
    if strength24 > 0:
        if kind == "confused":  # the 24 µm emission off the ring's centre
            ang, off = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 0.7) * a
            rho, _ = ellipse(x + off * np.cos(ang), y + off * np.sin(ang))
        amp24 = strength24 * lev24
        core = rng.uniform(0.3, 0.6)
        img24[box] += amp24 * np.exp(-0.5 * (rho / core) ** 2)
        if rng.random() < 0.4:  # compact central source (exciting star cluster)
            img24[box] += 2 * amp24 * np.exp(-0.5 * (rho * a) ** 2)
    return kind


def _paint_lines(shape, rng, n, pix_arcsec) -> np.ndarray:
    """Filaments: smooth random curves, a few arcmin to a degree long, 0.2'-1' wide."""
    out = np.zeros(shape)
    ny, nx = shape
    for _ in range(n):
        length = rng.uniform(5, 60) * 60 / pix_arcsec
        steps = int(max(length * 2, 10))
        ang = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.03, steps))
        xs = rng.uniform(0, nx) + np.cumsum(0.5 * np.cos(ang))
        ys = rng.uniform(0, ny) + np.cumsum(0.5 * np.sin(ang))
        ok = (xs >= 0) & (xs < nx) & (ys >= 0) & (ys < ny)
        line = np.zeros(shape)
        np.add.at(line, (ys[ok].astype(int), xs[ok].astype(int)), rng.uniform(0.3, 1.0))
        width = max(rng.uniform(0.2, 1.0) * 60 / pix_arcsec * FWHM_TO_SIGMA, 0.7)
        out += ndimage.gaussian_filter(line, width) * width * 2.5
    return out


def _padded_grid(glon_c: float, glat_c: float, cfg: dict, pad: int):
    """(output WCS, its shape, the simulation WCS padded by ``pad`` pixels on each side,
    the padded shape)."""
    pix = float(cfg["pixel_arcsec"])
    w_out, (ny0, nx0) = field_wcs(glon_c, glat_c, cfg["width_deg"], cfg["height_deg"], pix)
    w8 = w_out.deepcopy()
    w8.wcs.crpix = [w_out.wcs.crpix[0] + pad, w_out.wcs.crpix[1] + pad]
    w8.wcs.set()
    return w_out, (ny0, nx0), w8, (ny0 + 2 * pad, nx0 + 2 * pad)


def _diffuse(rng, shape, w8, cfg: dict, field_scale: float):
    """Diffuse emission (log-normal structure on all scales, correlated between the bands,
    rising towards b = 0) with filaments: (img8, img24, bg8, bg24)."""
    pix = float(cfg["pixel_arcsec"])
    ny = shape[0]
    _, glat_grid = w8.pixel_to_world_values(np.zeros(ny), np.arange(ny))
    profile = np.exp(-np.abs(glat_grid) / cfg["background_scale_deg"])[:, None]
    g_common = _power_law_field(rng, shape)
    g8 = 0.8 * g_common + 0.6 * _power_law_field(rng, shape)
    g24 = 0.8 * g_common + 0.6 * _power_law_field(rng, shape)
    bg8 = cfg["background_8um"] * (0.15 + profile) * np.exp(0.45 * g8 - 0.1)
    bg24 = cfg["background_24um"] * (0.1 + profile) * np.exp(0.5 * g24 - 0.125)
    img8, img24 = bg8.copy(), bg24.copy()

    fil = _paint_lines(shape, rng, int(round(cfg["filaments_per_field"] * field_scale)), pix)
    img8 += fil * 0.6 * bg8
    img24 += fil * 0.3 * bg24
    return img8, img24, bg8, bg24


def _paint_truth(img8, img24, truth: Table, w8, pix: float, rng, bg8, bg24):
    """Paint the bubbles of ``truth`` (in place); their pixel centres (x, y) on ``w8``."""
    pix_arcmin = pix / 60.0
    xb, yb = w8.world_to_pixel_values(
        np.mod(np.asarray(truth["GLON"], float), 360.0), np.asarray(truth["GLAT"], float)
    )
    for i, row in enumerate(truth):
        paint_bubble(
            img8, img24, xb[i], yb[i], row["MajAxis"] / pix_arcmin, row["CONTRAST"],
            row["STRENGTH24"], bool(row["CLEAR"]), rng, kind=str(row["KIND"]),
            min_px=row["MinAxis"] / pix_arcmin, theta_deg=row["theta"], level8=bg8,
            level24=bg24,
        )  # fmt: skip
    return xb, yb


def _dark_cloud_depth(rng, shape, cfg: dict, field_scale: float) -> np.ndarray:
    """Optical depth at 8 µm of the infrared dark clouds (elongated Gaussians near b = 0)."""
    pix = float(cfg["pixel_arcsec"])
    ny, nx = shape
    tau = np.zeros(shape)
    for _ in range(int(round(cfg["dark_clouds_per_field"] * field_scale))):
        cx, cy = rng.uniform(0, nx), rng.normal(ny / 2, ny / 8)
        s_major = rng.uniform(2, 12) * 60 / pix / 2.355
        s_minor = s_major * rng.uniform(0.2, 0.6)
        ang = rng.uniform(0, np.pi)
        r = int(4 * s_major)
        x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, nx)
        y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        u = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
        v = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
        tau[y0:y1, x0:x1] += rng.uniform(0.3, 1.5) * np.exp(
            -0.5 * ((u / s_major) ** 2 + (v / s_minor) ** 2)
        )
    return tau


def _add_sources(img8, img24, rng, cfg: dict, area_deg2: float, field_scale: float) -> None:
    """Add (in place) stars (denser at 8 µm), Mira-like 24 µm sources, each in its band's
    beam, and bright HII regions."""
    pix = float(cfg["pixel_arcsec"])
    shape = img8.shape
    ny, nx = shape
    pts8 = np.zeros(shape)
    pts24 = np.zeros(shape)
    n_stars = int(rng.poisson(cfg["point_sources_per_deg2"] * area_deg2))
    sx, sy = rng.integers(0, nx, n_stars), rng.integers(0, ny, n_stars)
    flux = np.minimum((rng.pareto(1.5, n_stars) + 1.0) * 2.0, 1500.0)
    np.add.at(pts8, (sy, sx), flux)
    k24 = rng.random(n_stars) < 0.2
    np.add.at(pts24, (sy[k24], sx[k24]), 0.3 * flux[k24])
    n_mira = int(rng.poisson(cfg["compact_24um_per_deg2"] * area_deg2))
    mx, my = rng.integers(0, nx, n_mira), rng.integers(0, ny, n_mira)
    mflux = rng.uniform(50, 1000, n_mira)
    np.add.at(pts24, (my, mx), mflux)
    np.add.at(pts8, (my, mx), 0.1 * mflux)
    img8 += ndimage.gaussian_filter(pts8, max(cfg["beam_8um_arcsec"] / pix * FWHM_TO_SIGMA, 1e-3))
    img24 += ndimage.gaussian_filter(
        pts24, max(cfg["beam_24um_arcsec"] / pix * FWHM_TO_SIGMA, 1e-3)
    )
    for _ in range(int(rng.poisson(cfg["saturated_per_field"] * field_scale))):
        cx, cy = rng.uniform(0, nx), rng.normal(ny / 2, ny / 10)
        s = max(rng.uniform(0.3, 1.0) * 60 / pix / 2.355, 1.0)
        yy, xx = np.ogrid[:ny, :nx]
        blob = np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / s**2)
        img8 += rng.uniform(5e3, 2e4) * blob
        img24 += rng.uniform(5e3, 2e4) * blob


def _mips_grid(img24, w8, glon_c: float, glat_c: float, cfg: dict, pad: int, rng):
    """The 24 µm image resampled onto its own coarser TAN grid (as real MIPSGAL mosaics),
    with noise and saturation: (WCS, image)."""
    from reproject import reproject_interp  # lazy: ~0.6 s to import, needed only here

    pix = float(cfg["pixel_arcsec"])
    factor = float(cfg["m24_pixel_factor"])
    w24, shape24 = field_wcs(
        glon_c,
        glat_c,
        cfg["width_deg"] + 2 * (pad - 1) * pix / 3600,  # inside the padded footprint
        cfg["height_deg"] + 2 * (pad - 1) * pix / 3600,
        pix * factor,
        projection="TAN",
    )
    if factor > 1:
        img24_s = ndimage.gaussian_filter(img24, 0.5 * (factor - 1.0))  # anti-aliasing
    else:
        img24_s = img24
    m24, _ = reproject_interp((img24_s, w8), w24, shape_out=shape24, order="bilinear")
    m24 = m24 + rng.normal(0.0, cfg["noise_24um"], shape24)
    m24[m24 > SATURATION["24um"]] = np.nan
    return w24, m24


def _mock_hdu(image: np.ndarray, header, field: str, extra: dict | None = None):
    """A float32 primary HDU in MJy/sr labelled as the mock of ``field``."""
    header["BUNIT"] = "MJy/sr"
    header["TELESCOP"] = "Spitzer (mock)"
    header["FIELD"] = field
    for key, value in (extra or {}).items():
        header[key] = value
    return fits.PrimaryHDU(image.astype(np.float32), header=header)


def simulate_field(field: str, cfg: dict, seed: int, real: Table | None = None):
    """Mock mosaics of one field.

    Returns ``(i4_hdu, m1_hdu, truth)``: the 8 µm image on a Galactic CAR grid, the 24 µm
    image on a coarser TAN grid (``m24_pixel_factor``), both primary HDUs with BUNIT MJy/sr,
    and the truth catalogue (MWP DR2 columns + ``CLEAR`` + ``KIND``).
    """
    glon_c, glat_c = field_center(field)
    rng = np.random.default_rng([seed, SIM_STAGE, int(field[:5])])
    pix = float(cfg["pixel_arcsec"])
    # Simulate on a padded grid so that the coarser 24 µm grid has data beyond the 8 µm edges.
    factor = float(cfg["m24_pixel_factor"])
    pad = int(np.ceil(2 * factor)) + 2
    w_out, (ny0, nx0), w8, shape = _padded_grid(glon_c, glat_c, cfg, pad)
    area_deg2 = cfg["width_deg"] * cfg["height_deg"]
    field_scale = area_deg2 / 6.0

    img8, img24, bg8, bg24 = _diffuse(rng, shape, w8, cfg, field_scale)
    if real is None:
        truth = draw_bubbles(rng, glon_c, glat_c, cfg)
    else:
        truth = real_bubbles(rng, real, glon_c, glat_c, cfg)
    if len(truth):
        xb, yb = _paint_truth(img8, img24, truth, w8, pix, rng, bg8, bg24)
    # Infrared dark clouds: absorption at 8 µm, weaker at 24 µm.
    tau = _dark_cloud_depth(rng, shape, cfg, field_scale)
    img8 *= np.exp(-tau)
    img24 *= np.exp(-tau / 3.0)
    _add_sources(img8, img24, rng, cfg, area_deg2, field_scale)

    # Beams on the extended emission (point sources were convolved above) and noise.
    img8 = ndimage.gaussian_filter(img8, cfg["beam_8um_arcsec"] / pix * FWHM_TO_SIGMA)
    img24 = ndimage.gaussian_filter(img24, cfg["beam_24um_arcsec"] / pix * FWHM_TO_SIGMA)
    img8 += rng.normal(0.0, cfg["noise_8um"], shape)
    img8[img8 > SATURATION["8um"]] = np.nan
    w24, m24 = _mips_grid(img24, w8, glon_c, glat_c, cfg, pad, rng)

    i4 = _mock_hdu(img8[pad:-pad, pad:-pad], w_out.to_header(), field)
    pixscale = {"PIXSCAL1": (pix * factor, "[arcsec] pixel scale")}
    m1 = _mock_hdu(m24, w24.to_header(), field, pixscale)
    keep = np.ones(len(truth), bool)
    if len(truth):
        xb, yb = xb - pad, yb - pad
        keep = (xb >= -0.5) & (xb < nx0 - 0.5) & (yb >= -0.5) & (yb < ny0 - 0.5)
    return i4, m1, truth[keep]


def field_catalog(truth: Table, field: str, cfg: dict, seed: int) -> Table:
    """The volunteers' catalogue of a field's truth (:func:`volunteer_catalog`), from its
    own random stream of ``seed`` and the field."""
    glon_c, glat_c = field_center(field)
    rng = np.random.default_rng([seed, SIM_STAGE, int(field[:5]), 1])
    return volunteer_catalog(rng, truth, glon_c, glat_c, cfg)
