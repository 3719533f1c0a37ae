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
from skydetect.sky.instrument import T_CMB, channel

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
    kT_e (isothermal), T_e from the Arnaud 2005 M-T relation (:func:`physics.temperature_kev`),
    line-of-sight v ~ N(0, sigma_v). Returns (K_CMB per unit y, v [km/s])."""
    kt_kev = physics.temperature_kev(
        np.asarray(truth["M500"], float), np.asarray(truth["Z"], float)
    )
    v = rng.normal(0.0, sigma_v_kms, len(truth))
    return -T_CMB * (physics.M_E_C2_KEV / kt_kev) * v / 299792.458, v


def calibration_factors(params, seed: int, bands) -> dict[str, float]:
    """One multiplicative calibration factor per channel map, 1 + sigma_nu N(0, 1)
    (``calibration_error``; Planck 2018 III: <~0.5 % at 100-353 GHz, ~5 % at 545/857)."""
    rng = rng_stream(seed, 30)
    draws = rng.standard_normal(len(bands))
    return {b: 1.0 + float(params.calibration_error.get(b, 0.0)) * d
            for b, d in zip(bands, draws, strict=True)}  # fmt: skip


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
    return dust_law(abs_sin_glat(nside), params) * structure


def dust_law(abs_sin_b, params):
    """Large-scale 353 GHz dust intensity [MJy/sr] at |sin b|: the softened cosecant law."""
    return params.dust_amplitude_353 / (abs_sin_b + np.sin(np.radians(params.dust_plane_width_deg)))


def co_law(abs_sin_b, params):
    """Large-scale W_CO [K km/s] at |sin b|: exp(-|b|/h) plus the high-latitude floor."""
    b_deg = np.degrees(np.arcsin(abs_sin_b))
    return params.co_plane_kkms * (np.exp(-b_deg / params.co_scale_height_deg)
                                   + params.co_floor_fraction)  # fmt: skip


def dust_parameter_maps(nside: int, params, rng) -> tuple[np.ndarray, np.ndarray]:
    """Smooth T_d and beta_d maps: mean +- dispersion times unit fields with C_ell ~ ell^-3."""
    lmax = min(3 * nside - 1, 3 * 64)
    t = params.dust_temperature + params.dust_temperature_sigma * unit_field(nside, lmax, -3, rng)
    b = params.dust_beta + params.dust_beta_sigma * unit_field(nside, lmax, -3, rng)
    return np.clip(t, 10.0, 40.0), b


def co_template(nside: int, params, structure: np.ndarray) -> np.ndarray:
    """CO(1-0)-equivalent intensity W_CO [K km/s]: exp(-|b|/h) plus a high-latitude floor,
    times the dust's log-normal structure (molecular gas follows the dust)."""
    return co_law(abs_sin_glat(nside), params) * structure


def local_power_factors(params, abs_b_deg) -> dict[str, np.ndarray]:
    """Dust and CO power at latitudes |b| relative to their full-sky mean power (the squared
    large-scale laws; |sin b| is uniform over the sphere)."""
    s = np.linspace(0.0, 1.0, 20001)
    at = np.abs(np.sin(np.radians(np.asarray(abs_b_deg, float))))
    return {
        "dust": dust_law(at, params) ** 2 / np.mean(dust_law(s, params) ** 2),
        "co": co_law(at, params) ** 2 / np.mean(co_law(s, params) ** 2),
    }


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
