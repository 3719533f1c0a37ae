"""Templates of the mock Planck sky: random fields, clusters, dust, CIB, CO, sources, noise.

Every function draws from the random stream it is given (see :func:`rng_stream`), so each
component is reproducible on its own. Numbers and their sources: ``../shared/docs/sky-model.md``
§1; the settings are fields of :class:`skydetect.sky.planck.SimulationParams`.

What keeps a linear filter from removing the foregrounds exactly:

- dust: T_d and beta_d vary smoothly over the sky (Gaussian random fields with C_ell ~ ell^-3
  around the mean values), so each channel has its own dust map, not one template times a
  constant;
- CIB: each channel is ``r_nu`` times a common field plus ``sqrt(1 - r_nu^2)`` times a field
  of its own, so the correlation between channels i and j is r_i r_j (< 1 everywhere);
- CO: one W_CO template [K km/s] (a latitude law times the dust's log-normal structure) seen
  at 100, 217 and 353 GHz with per-band factors [K_CMB per K km/s];
- noise: white per pixel but modulated by a hit-count map that is deep at the ecliptic poles
  (hits ~ 1 / |cos ecliptic latitude|, capped at ``noise_hits_ratio``), normalised so that the
  sky-average noise variance stays the instrument's level.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
from astropy.table import Table

from skydetect.sky import physics
from skydetect.sky.instrument import channel

STAGE = 2  # seed stream of the sky simulation: default_rng([seed, STAGE, substream])


def rng_stream(seed: int, sub: int) -> np.random.Generator:
    """The random stream ``sub`` of the sky simulation for ``seed``."""
    return np.random.default_rng([int(seed), STAGE, sub])


def gaussian_alm(cl: np.ndarray, lmax: int, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian random field's alm (healpy layout) with power spectrum ``cl`` (own RNG)."""
    ell, m = hp.Alm.getlm(lmax)
    amp = np.sqrt(cl[ell])
    alm = (rng.standard_normal(ell.size) + 1j * rng.standard_normal(ell.size)) * (amp / np.sqrt(2))
    m0 = m == 0
    alm[m0] = rng.standard_normal(np.count_nonzero(m0)) * amp[m0]
    return alm


def pixel_window(nside: int, lmax: int) -> np.ndarray:
    """Gaussian approximation of the HEALPix pixel window: a square top-hat of the pixel's
    area has a variance of area/12 per axis (healpy's tabulated windows need a download)."""
    ell = np.arange(lmax + 1)
    return np.exp(-ell * (ell + 1.0) * hp.nside2pixarea(nside) / 24.0)


def power_law_cl(lmax: int, amplitude_at_1000: float, index: float, ell_min: int = 2) -> np.ndarray:
    ell = np.arange(lmax + 1, dtype=float)
    cl = np.zeros(lmax + 1)
    ok = ell >= ell_min
    cl[ok] = amplitude_at_1000 * (ell[ok] / 1000.0) ** index
    return cl


def unit_field(nside: int, lmax: int, index: float, rng) -> np.ndarray:
    """A zero-mean, unit-variance Gaussian map with C_ell ~ ell^index."""
    g = hp.alm2map(gaussian_alm(power_law_cl(lmax, 1.0, index), lmax, rng), nside, lmax=lmax)
    return (g - g.mean()) / g.std()


def power_law_draw(rng, n, s_min, slope):
    """Fluxes from dN/dS ~ S^-slope above s_min (inverse CDF)."""
    return s_min * (1.0 - rng.random(n)) ** (-1.0 / (slope - 1.0))


def abs_sin_glat(nside: int) -> np.ndarray:
    theta, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    return np.abs(np.cos(theta))


# --------------------------------------------------------------------------- SEDs
def ir_sed(params, band):
    return physics.modified_blackbody(
        channel(band).freq_ghz, 545.0, params.ir_temperature, params.ir_beta
    )


def radio_sed(params, band):
    return physics.power_law(channel(band).freq_ghz, 100.0, params.radio_index)


def dust_sed(params, band, temperature=None, beta=None):
    """Dust intensity ratio I_nu / I_353 (mean T_d, beta_d unless given, scalars or maps)."""
    t = params.dust_temperature if temperature is None else temperature
    b = params.dust_beta if beta is None else beta
    return physics.modified_blackbody(channel(band).freq_ghz, 353.0, t, b)


def cib_sed(params, band):
    return physics.modified_blackbody(
        channel(band).freq_ghz, 545.0, params.cib_temperature, params.cib_beta
    )


def cib_correlation(params, band) -> float:
    """Correlation of channel ``band``'s CIB with the common CIB field."""
    return float(params.cib_correlation.get(band, 1.0))


# --------------------------------------------------------------------------- templates
def ksz_weights(truth: Table, rng, sigma_v_kms: float = 300.0) -> np.ndarray:
    """Per-cluster kSZ amplitude relative to its y: dT/T_CMB = -tau v/c with tau = y m_e c^2 /
    kT_e, T_e from M500 (kT = 6 keV (M500 / 5e14)^(2/3) E(z)^(2/3)), v ~ N(0, sigma_v)."""
    from skydetect.sky.instrument import T_CMB

    m = np.asarray(truth["M500"], float)
    kt_kev = 6.0 * (m / 5.0) ** (2.0 / 3.0) * physics.ez(np.asarray(truth["Z"], float)) ** (2 / 3)
    v_over_c = rng.normal(0.0, sigma_v_kms, len(truth)) / 299792.458
    return -T_CMB * (511.0 / kt_kev) * v_over_c  # K_CMB per unit y


def paint_clusters(nside: int, truth: Table, progress: bool = True, ksz=None):
    """Compton-y map (RING): each cluster's projected Arnaud profile painted within 5 theta500.

    Pixel values are renormalised so that each cluster's integrated y equals its Y5R500. With
    ``ksz`` (per-cluster K_CMB per unit y, :func:`ksz_weights`) also returns the kSZ map
    [K_CMB] painted with the same profiles: ``(y, ksz)``.
    """
    from tqdm import tqdm

    x_tab, f_tab = physics.projected_profile()
    ymap = np.zeros(hp.nside2npix(nside))
    kmap = np.zeros(hp.nside2npix(nside)) if ksz is not None else None
    pix_area = hp.nside2pixarea(nside) * physics.ARCMIN_PER_RAD**2  # arcmin^2
    vec = hp.ang2vec(np.asarray(truth["GLON"]), np.asarray(truth["GLAT"]), lonlat=True)
    theta500 = np.asarray(truth["THETA500"], float)
    y5 = np.asarray(truth["Y5R500"], float)
    for i in tqdm(range(len(truth)), desc="paint clusters", mininterval=5, disable=not progress):
        radius = np.radians(5.0 * theta500[i] / 60.0)
        pix = hp.query_disc(nside, vec[i], radius)
        if pix.size == 0:
            pix = np.array([hp.vec2pix(nside, *vec[i])])
            prof = np.ones(1)
        else:
            cosang = np.clip(np.dot(np.array(hp.pix2vec(nside, pix)).T, vec[i]), -1.0, 1.0)
            x = np.degrees(np.arccos(cosang)) * 60.0 / theta500[i]
            prof = np.interp(x, x_tab, f_tab, right=0.0)
            if prof.sum() <= 0:
                prof = np.ones(pix.size)
        y = y5[i] * prof / (prof.sum() * pix_area)
        ymap[pix] += y
        if ksz is not None:
            kmap[pix] += ksz[i] * y
    return ymap if ksz is None else (ymap, kmap)


def source_template(nside: int, sources: Table, flux_col: str, mask) -> np.ndarray:
    """Intensity template [MJy/sr]: each source's flux [mJy] in its pixel (flux-conserving)."""
    m = np.zeros(hp.nside2npix(nside))
    sel = np.asarray(mask)
    pix = hp.ang2pix(
        nside, np.asarray(sources["GLON"])[sel], np.asarray(sources["GLAT"])[sel], lonlat=True
    )
    flux_mjysr = np.asarray(sources[flux_col], float)[sel] * 1e-9 / hp.nside2pixarea(nside)
    np.add.at(m, pix, flux_mjysr)
    return m


def dust_structure(nside: int, params, rng, lmax: int) -> np.ndarray:
    """The log-normal small-scale field (mean 1) shared by the dust and the CO."""
    g = unit_field(nside, lmax, params.dust_cl_index, rng)
    s = params.dust_fluctuation
    return np.exp(s * g - 0.5 * s * s)


def dust_template_353(nside: int, params, structure: np.ndarray) -> np.ndarray:
    """353 GHz dust intensity [MJy/sr]: cosecant latitude law times the log-normal field."""
    sinb = abs_sin_glat(nside)
    large = params.dust_amplitude_353 / (sinb + np.sin(np.radians(params.dust_plane_width_deg)))
    return large * structure


def dust_parameter_maps(nside: int, params, rng) -> tuple[np.ndarray, np.ndarray]:
    """Smooth T_d and beta_d maps: mean +- dispersion times unit fields with C_ell ~ ell^-3."""
    lmax = min(3 * nside - 1, 3 * 64)
    t = params.dust_temperature + params.dust_temperature_sigma * unit_field(nside, lmax, -3, rng)
    b = params.dust_beta + params.dust_beta_sigma * unit_field(nside, lmax, -3, rng)
    return np.clip(t, 10.0, 40.0), b


def co_template(nside: int, params, structure: np.ndarray) -> np.ndarray:
    """CO(1-0)-equivalent intensity W_CO [K km/s]: exp(-|b|/h) plus a high-latitude floor,
    times the dust's log-normal structure (molecular gas follows the dust)."""
    b_deg = np.degrees(np.arcsin(abs_sin_glat(nside)))
    law = np.exp(-b_deg / params.co_scale_height_deg) + params.co_floor_fraction
    return params.co_plane_kkms * law * structure


def co_scale(params, band) -> float:
    """K_CMB per K km/s of the CO line inside ``band`` (0 outside 100/217/353 GHz)."""
    return float(params.co_kcmb_per_kkms.get(band, 0.0))


def hit_map(nside: int, ratio: float) -> np.ndarray:
    """Relative hit counts: 1 / |cos ecliptic latitude|, capped at ``ratio`` (>= 1) at the poles;
    the Planck scan circles cross at the ecliptic poles. ``ratio`` 1 gives a uniform map."""
    if ratio <= 1.0:
        return np.ones(hp.nside2npix(nside))
    rot = hp.Rotator(coord=["G", "E"])
    theta, phi = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    theta_e, _ = rot(theta, phi)
    cos_lat = np.abs(np.sin(theta_e))
    return np.minimum(1.0 / np.maximum(cos_lat, 1e-6), ratio)


def noise_modulation(nside: int, ratio: float) -> np.ndarray:
    """sigma(p) / sigma_mean with sigma ~ hits^-1/2 and a sky-average variance of 1."""
    inv = 1.0 / hit_map(nside, ratio)
    return np.sqrt(inv / inv.mean())
