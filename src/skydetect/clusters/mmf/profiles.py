"""Cluster templates for the MMF: projected GNFW pressure profiles, their Fourier transforms,
beams and the HEALPix pixel window."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import integrate, special

from skydetect.sky import physics

# --------------------------------------------------------------------------------- profile
# The GNFW profiles and their line-of-sight projection live in skydetect.sky.physics (the
# mock sky injects its clusters with the same functions).
PROFILES: dict[str, physics.GNFW] = {
    "arnaud10": physics.ARNAUD10,  # Arnaud et al. 2010 (A&A 517, A92), universal profile
    "planck_int_v": physics.PLANCK_INT_V,  # Planck Intermediate Results V (2013)
}


class MMFError(ValueError):
    """Bad MMF input or configuration (the message names the key or file)."""


def profile_params(profile: str) -> physics.GNFW:
    """The GNFW parameters of a named pressure profile (MMFError naming the key if unknown)."""
    try:
        return PROFILES[profile]
    except KeyError:
        raise MMFError(
            f"unknown pressure profile {profile!r} (clusters.mmf.profile): "
            f"expected one of {', '.join(PROFILES)}"
        ) from None


def _projected_table(profile: str, truncation: float):
    return physics.projected_profile(profile_params(profile), float(truncation))


def projected_profile(u, profile: str = "arnaud10", truncation: float = 5.0) -> np.ndarray:
    """Line-of-sight projected GNFW profile at u = theta / theta500, truncated at
    ``truncation`` R500 (a sphere) and normalised to unit integral over the plane of u."""
    uu, ff = _projected_table(profile, float(truncation))
    u = np.asarray(u, dtype=float)
    return np.interp(u, uu, ff, right=0.0)


@lru_cache(maxsize=8)
def _transform_table(profile: str, truncation: float, kappa_max: float):
    # >= 8 samples per period of J0 at kappa_max; kappa steps well below G's 1/5 period
    u = np.linspace(0.0, truncation, int(8 * kappa_max * truncation) + 1)
    g = projected_profile(u, profile, truncation)
    kappa = np.linspace(0.0, kappa_max, int(40 * kappa_max) + 1)
    gk = np.empty_like(kappa)
    for s in range(0, len(kappa), 500):
        j0 = special.j0(2.0 * np.pi * kappa[s : s + 500, None] * u[None, :])
        gk[s : s + 500] = 2.0 * np.pi * integrate.trapezoid(j0 * (g * u)[None, :], u, axis=1)
    return kappa, gk / gk[0]


def profile_transform(q, theta500: float, profile: str = "arnaud10", truncation: float = 5.0):
    """Fourier transform T(q) of the unit-integral template of size ``theta500`` (arcmin) at
    spatial frequencies ``q`` (cycles per arcmin); T(0) = 1."""
    kappa = np.abs(np.asarray(q, dtype=float)) * float(theta500)
    kmax = float(2.0 ** np.ceil(np.log2(max(kappa.max(initial=0.0) * 1.01, 16.0))))
    kk, gk = _transform_table(profile, float(truncation), kmax)
    return np.interp(kappa, kk, gk)


def healpix_pixel_window(q, nside: int) -> np.ndarray:
    """Pixel window of HEALPix pixels at ``nside`` (spatial frequency ``q`` in cycles/arcmin).

    healpy's tabulated windows need a download, so a Gaussian in ell / nside is used,
    W = exp(-0.047 (ell / nside)^2), fitted to HEALPix's own pixel averaging (the power that
    ``ud_grade`` keeps; nside 64 and 128, ell <= 2 nside, residuals < 1 %). It is about 10 %
    wider than the window of a square pixel of the same area (HEALPix pixels are diamonds).
    """
    ell = 2.0 * np.pi * np.asarray(q, dtype=float) * (180.0 * 60.0 / np.pi)
    return np.exp(-0.047 * (ell / float(nside)) ** 2)


def beam_transfer(q, fwhm_arcmin: float, pixwin_nside: int | None = None) -> np.ndarray:
    """Gaussian beam transfer function at ``q`` (cycles/arcmin), times the HEALPix pixel
    window of ``pixwin_nside`` when given (the patches are sampled from HEALPix pixels)."""
    q = np.asarray(q, dtype=float)
    b = np.exp(-((np.pi * q * fwhm_arcmin) ** 2) / (4.0 * np.log(2.0)))
    if pixwin_nside:
        b = b * healpix_pixel_window(q, pixwin_nside)
    return b


