"""Physics of the mock Planck sky: cluster profiles and scaling relations, the halo mass
function, and the spectra of the emission components.

Sources (``../shared/docs/sky-model.md`` §1):

- cosmology: ``astropy.cosmology.Planck18``; linear matter power spectrum and lensed CMB TT
  spectrum of the Planck 2018 best fit, tabulated once with CAMB (``sky/data/*.txt``);
- pressure profile: Arnaud et al. 2010 GNFW (P0 8.403 h70^-3/2, c500 1.177, gamma 0.3081,
  alpha 1.0510, beta 5.4905), truncated at 5 R500;
- Y-M: Planck 2013 XX (Y* = 10^-0.19, alpha 1.79, beta 0.66, sigma_log10Y 0.075, b = 0.2);
  Y5R500 = 1.796 Y500;
- mass function: Tinker et al. 2008 (ApJ 688, 709), Table 2 with its redshift evolution,
  evaluated at Delta_mean = 500 / Omega_m(z) for M500c;
- cluster temperature: Arnaud, Pointecouteau & Pratt 2005 (A&A 441, 893) M-T relation,
  E(z) M500 = 3.84e14 h70^-1 Msun (kT / 5 keV)^1.71 with the hydrostatic mass (1 - b) M500;
- relativistic tSZ: first-order term of Itoh, Kohyama & Nozawa 1998 (ApJ 502, 7), eq. 2.27;
- dust: modified black body T_d = 19.6 K, beta_d = 1.53; CIB and IR sources: modified black
  bodies; radio sources: power law.

Units: masses in 1e14 Msun, angles in arcmin, Y in arcmin^2, intensities in MJy/sr, fluxes
in mJy unless stated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import astropy.units as u
import numpy as np
from astropy import constants as const
from astropy.cosmology import Planck18
from scipy import integrate, special

from skydetect.schema import schema_defaults
from skydetect.sky.instrument import T_CMB, channel

_Z = schema_defaults("planck.simulate")  # the redshift range of the drawn clusters

COSMO = Planck18
ARCMIN_PER_RAD = 180.0 * 60.0 / np.pi
H_OVER_K = (const.h / const.k_B).to_value(u.K / u.GHz)  # K per GHz


# --------------------------------------------------------------------------- tabulated data
def _data_path(name: str):
    return resources.files("skydetect.sky").joinpath("data", name)


@lru_cache(maxsize=1)
def cmb_tt_cl(lmax: int | None = None) -> np.ndarray:
    """Lensed Planck-2018 CMB TT C_ell in K_CMB^2 for ell = 0..lmax (0 for ell < 2)."""
    ell, dl = np.loadtxt(_data_path("planck2018_lensed_tt.txt"), unpack=True)
    cl = np.zeros(int(ell.max()) + 1)
    ell = ell.astype(int)
    cl[ell] = dl * 2.0 * np.pi / (ell * (ell + 1.0)) * 1e-12  # uK^2 -> K^2
    return cl


def cmb_cl(lmax: int) -> np.ndarray:
    cl = cmb_tt_cl()
    if lmax + 1 > cl.size:
        raise ValueError(f"tabulated CMB spectrum stops at ell={cl.size - 1}, asked {lmax}")
    return cl[: lmax + 1].copy()


@lru_cache(maxsize=1)
def _linear_pk() -> tuple[np.ndarray, np.ndarray]:
    k, pk = np.loadtxt(_data_path("planck2018_linear_pk_z0.txt"), unpack=True)
    return k, pk  # h/Mpc, (Mpc/h)^3


# --------------------------------------------------------------------------- cosmology
def ez(z):
    return COSMO.efunc(z)


def angular_diameter_distance_mpc(z):
    return COSMO.angular_diameter_distance(z).to_value(u.Mpc)


def rho_crit_msun_mpc3(z):
    return COSMO.critical_density(z).to_value(u.Msun / u.Mpc**3)


def r500_mpc(m500, z):
    """R500 [Mpc] from M500 [1e14 Msun]: M500 = 4/3 pi 500 rho_crit(z) R500^3."""
    m = np.asarray(m500, dtype=float) * 1e14
    return (3.0 * m / (4.0 * np.pi * 500.0 * rho_crit_msun_mpc3(z))) ** (1.0 / 3.0)


def theta500_arcmin(m500, z):
    """theta500 = R500 / D_A in arcmin."""
    return r500_mpc(m500, z) / angular_diameter_distance_mpc(z) * ARCMIN_PER_RAD


# --------------------------------------------------------------------------- Y-M relation
@dataclass(frozen=True)
class YMRelation:
    """Planck 2013 XX scaling: E^-beta D_A^2 Y500 / 1e-4 Mpc^2 = Y* (h/0.7)^(-2+a) [(1-b)M/6e14]^a."""

    log10_ystar: float = -0.19
    alpha: float = 1.79
    beta: float = 0.66
    scatter_log10: float = 0.075
    bias: float = 0.2
    y5r500_over_y500: float = 1.796


def y5r500_arcmin2(m500, z, rel: YMRelation = YMRelation(), rng=None):
    """Y5R500 [arcmin^2] of clusters of mass M500 [1e14 Msun] at redshift z.

    With ``rng`` the intrinsic log-normal scatter (sigma log10 Y = 0.075) is drawn.
    """
    m500 = np.asarray(m500, dtype=float)
    z = np.asarray(z, dtype=float)
    h = COSMO.H0.value / 100.0
    y_mpc2 = (
        1e-4
        * 10**rel.log10_ystar
        * (h / 0.7) ** (-2.0 + rel.alpha)
        * ((1.0 - rel.bias) * m500 / 6.0) ** rel.alpha
        * ez(z) ** rel.beta
    )
    y500 = y_mpc2 / angular_diameter_distance_mpc(z) ** 2 * ARCMIN_PER_RAD**2
    if rng is not None:
        y500 = y500 * 10 ** (rel.scatter_log10 * rng.standard_normal(np.shape(y500)))
    return rel.y5r500_over_y500 * y500


# --------------------------------------------------------------------------- GNFW profile
@dataclass(frozen=True)
class GNFW:
    """Arnaud et al. 2010 universal pressure profile (the default) or another GNFW set."""

    p0: float = 8.403
    c500: float = 1.177
    gamma: float = 0.3081
    alpha: float = 1.0510
    beta: float = 5.4905

    def pressure(self, x):
        """Dimensionless pressure p(x), x = r / R500 (amplitude P0)."""
        cx = self.c500 * np.asarray(x, dtype=float)
        return self.p0 / (
            cx**self.gamma * (1.0 + cx**self.alpha) ** ((self.beta - self.gamma) / self.alpha)
        )


ARNAUD10 = GNFW()
PLANCK_INT_V = GNFW(6.41, 1.81, 0.31, 1.33, 4.13)


@lru_cache(maxsize=8)
def projected_profile(profile: GNFW = ARNAUD10, x_max: float = 5.0, n: int = 400):
    """Projected (line-of-sight) profile of the sphere truncated at ``x_max`` R500.

    Returns ``(x, f)`` on a grid of x = theta / theta500 in [0, x_max], normalised so that
    the integral of 2 pi x f(x) dx over [0, x_max] is 1: a cluster of integrated
    Y5R500 [arcmin^2] and theta500 [arcmin] has y(theta) = Y5R500 / theta500^2 f(theta/theta500).
    """
    x = np.concatenate([[0.0], np.geomspace(1e-3, x_max, n - 1)])

    def los(xi):
        lmax = np.sqrt(max(x_max**2 - xi**2, 0.0))
        if lmax == 0.0:
            return 0.0
        # substitution l = s^2 tames the cusp at the centre line of sight
        val, _ = integrate.quad(
            lambda s: 2.0 * s * profile.pressure(np.sqrt(xi**2 + s**4) + 1e-12),
            0.0,
            np.sqrt(lmax),
            limit=200,
        )
        return 2.0 * val

    f = np.array([los(xi) for xi in x])
    norm = integrate.simpson(2.0 * np.pi * x * f, x=x)
    return x, f / norm


def profile_transform(k, profile: GNFW = ARNAUD10, x_max: float = 5.0):
    """2D Fourier (Hankel) transform of the normalised projected profile: u(k), u(0) = 1.

    ``k`` is the conjugate of x = theta / theta500 (so k = ell * theta500[rad]).
    """
    x, f = projected_profile(profile, x_max)
    k = np.atleast_1d(np.asarray(k, dtype=float))
    kernel = special.j0(np.outer(k, x))
    return integrate.simpson(2.0 * np.pi * x * f * kernel, x=x, axis=1)


# --------------------------------------------------------------------------- mass function
# Tinker et al. 2008, Table 2: Delta (mean), A, a, b, c.
_TINKER = np.array(
    [
        [200, 0.186, 1.47, 2.57, 1.19],
        [300, 0.200, 1.52, 2.25, 1.27],
        [400, 0.212, 1.56, 2.05, 1.34],
        [600, 0.218, 1.61, 1.87, 1.45],
        [800, 0.248, 1.87, 1.59, 1.58],
        [1200, 0.255, 2.13, 1.51, 1.80],
        [1600, 0.260, 2.30, 1.46, 1.97],
        [2400, 0.260, 2.53, 1.44, 2.24],
        [3200, 0.260, 2.66, 1.41, 2.44],
    ]
)


def growth_factor(z):
    """Linear growth D(z)/D(0) for flat LCDM (Heath 1977 integral, radiation neglected)."""
    z = np.atleast_1d(np.asarray(z, dtype=float))

    def d_unnorm(zz):
        a = 1.0 / (1.0 + zz)
        val, _ = integrate.quad(lambda aa: 1.0 / (aa * ez(1.0 / aa - 1.0)) ** 3, 0.0, a)
        return 2.5 * COSMO.Om0 * ez(zz) * val

    d0 = d_unnorm(0.0)
    return np.array([d_unnorm(zz) / d0 for zz in z])


def sigma_r(m_h):
    """rms linear density fluctuation at z = 0 in top-hat spheres of mass ``m_h`` [Msun/h]."""
    k, pk = _linear_pk()
    rho_m = (COSMO.Om0 * COSMO.critical_density0).to_value(u.Msun / u.Mpc**3) / (COSMO.h**2)
    r = (3.0 * np.asarray(m_h, dtype=float) / (4.0 * np.pi * rho_m)) ** (1.0 / 3.0)  # Mpc/h
    kr = np.outer(r, k)
    w = 3.0 * (np.sin(kr) - kr * np.cos(kr)) / kr**3
    integrand = k**3 * pk * w**2 / (2.0 * np.pi**2)
    return np.sqrt(integrate.simpson(integrand, x=np.log(k), axis=1)), rho_m


def tinker08_dndlnm(m500, z):
    """Tinker 2008 dn/dlnM500 [Mpc^-3] for M500c [1e14 Msun] (array) at one redshift ``z``."""
    h = COSMO.h
    m_h = np.asarray(m500, dtype=float) * 1e14 * h
    sig0, rho_m = sigma_r(m_h)
    sig = sig0 * growth_factor(z)[0]
    delta = 500.0 / COSMO.Om(z)
    logd = np.log10(delta)
    table = _TINKER
    big_a, a, b, c = (np.interp(logd, np.log10(table[:, 0]), table[:, i]) for i in (1, 2, 3, 4))
    alpha_z = 10 ** (-((0.75 / np.log10(delta / 75.0)) ** 1.2))
    big_a *= (1.0 + z) ** -0.14
    a *= (1.0 + z) ** -0.06
    b *= (1.0 + z) ** -alpha_z
    f = big_a * ((sig / b) ** -a + 1.0) * np.exp(-c / sig**2)
    dlninvsig_dlnm = -np.gradient(np.log(sig), np.log(m_h))
    dn_dlnm_h = f * rho_m / m_h * dlninvsig_dlnm  # (h/Mpc)^3
    return dn_dlnm_h * h**3


def cluster_counts_grid(m_min, m_max=30.0, z_min=_Z["z_min"], z_max=_Z["z_max"], n_m=120, n_z=60):
    """Full-sky expected counts per (ln M500, z) cell from the Tinker mass function.

    Returns ``(lnm_edges, z_edges, counts)`` with counts of shape (n_m, n_z).
    """
    lnm_edges = np.linspace(np.log(m_min), np.log(m_max), n_m + 1)
    z_edges = np.linspace(z_min, z_max, n_z + 1)
    lnm_c = 0.5 * (lnm_edges[1:] + lnm_edges[:-1])
    z_c = 0.5 * (z_edges[1:] + z_edges[:-1])
    dv_dz = (COSMO.differential_comoving_volume(z_c) * 4.0 * np.pi * u.sr).to_value(u.Mpc**3)
    counts = np.empty((n_m, n_z))
    for j, zz in enumerate(z_c):
        counts[:, j] = tinker08_dndlnm(np.exp(lnm_c), zz) * dv_dz[j]
    counts *= np.diff(lnm_edges)[:, None] * np.diff(z_edges)[None, :]
    return lnm_edges, z_edges, counts


def sample_clusters(rng, m_min, n=None, m_max=30.0, z_min=_Z["z_min"], z_max=_Z["z_max"]):
    """Draw (M500 [1e14 Msun], z) from the mass function; ``n`` None -> Poisson(expected)."""
    lnm_edges, z_edges, counts = cluster_counts_grid(m_min, m_max, z_min, z_max)
    total = counts.sum()
    if n is None:
        n = rng.poisson(total)
    p = (counts / total).ravel()
    cells = rng.choice(p.size, size=n, p=p)
    im, iz = np.unravel_index(cells, counts.shape)
    lnm = lnm_edges[im] + rng.random(n) * np.diff(lnm_edges)[im]
    z = z_edges[iz] + rng.random(n) * np.diff(z_edges)[iz]
    return np.exp(lnm), z


# --------------------------------------------------------------------------- spectra
def planck_bnu(nu_ghz, temperature):
    """Planck function B_nu(T) in MJy/sr."""
    nu = np.asarray(nu_ghz, dtype=float)
    x = H_OVER_K * nu / temperature
    bnu = (
        2.0 * const.h.value * (nu * 1e9) ** 3 / const.c.value**2 / np.expm1(x)
    )  # W m^-2 Hz^-1 sr^-1
    return bnu * 1e20  # 1 MJy = 1e-20 W m^-2 Hz^-1


def modified_blackbody(nu_ghz, nu0_ghz, temperature, beta):
    """MBB intensity ratio I(nu) / I(nu0) = (nu/nu0)^beta B_nu(T) / B_nu0(T)."""
    return (
        (np.asarray(nu_ghz) / nu0_ghz) ** beta
        * planck_bnu(nu_ghz, temperature)
        / planck_bnu(nu0_ghz, temperature)
    )


def power_law(nu_ghz, nu0_ghz, index):
    return (np.asarray(nu_ghz) / nu0_ghz) ** index


def _itoh_x_s(nu_ghz):
    x = H_OVER_K * np.asarray(nu_ghz, dtype=float) / T_CMB
    return x / np.tanh(x / 2.0), x / np.sinh(x / 2.0)


RELATIVISTIC_MAX_GHZ = 400.0  # first order only up to 353 GHz (x ~ 6)


def tsz_y1(nu_ghz):
    """First-order relativistic term Y1(x) of Itoh et al. 1998 (eq. 2.27): dT/T = y (Y0 +
    theta_e Y1), theta_e = kT_e / m_e c^2, Y0 = :func:`tsz_f`. Rayleigh-Jeans limit: 17/5.
    Above ``RELATIVISTIC_MAX_GHZ`` (545, 857 GHz: x > 9) the first-order series does not
    converge for hot clusters (Itoh et al. need terms to theta_e^5 there): 0."""
    xt, st = _itoh_x_s(nu_ghz)
    y1 = -10.0 + 23.5 * xt - 8.4 * xt**2 + 0.7 * xt**3 + st**2 * (-4.2 + 1.4 * xt)
    return np.where(np.asarray(nu_ghz, float) <= RELATIVISTIC_MAX_GHZ, y1, 0.0)


M_E_C2_KEV = 510.998950


def temperature_kev(m500, z, bias: float = 0.2, m5_1e14: float = 3.84, slope: float = 1.71):
    """Gas temperature kT [keV] of clusters of true mass M500 [1e14 Msun] at ``z``: Arnaud,
    Pointecouteau & Pratt 2005, E(z) M_HSE = 3.84e14 h70^-1 Msun (kT / 5 keV)^1.71, with the
    hydrostatic mass M_HSE = (1 - b) M500 (Planck 2013 XX: b = 0.2)."""
    h70 = COSMO.H0.value / 70.0
    m_hse = (1.0 - bias) * np.asarray(m500, dtype=float) * h70 * ez(np.asarray(z, dtype=float))
    return 5.0 * (m_hse / m5_1e14) ** (1.0 / slope)


def tsz_f(nu_ghz):
    """Monochromatic tSZ spectral function f(x) = x coth(x/2) - 4 (dT/T = y f)."""
    x = H_OVER_K * np.asarray(nu_ghz, dtype=float) / T_CMB
    return x / np.tanh(x / 2.0) - 4.0


def mjysr_to_map_unit(band: str) -> float:
    """Factor converting an intensity in MJy/sr into the band's map unit (K_CMB or MJy/sr)."""
    ch = channel(band)
    if ch.unit == "MJy/sr":
        return 1.0
    if ch.unit == "K_CMB":
        return 1.0 / ch.kcmb_to_mjysr
    raise ValueError(f"band {band} (unit {ch.unit}) has no intensity scale")


def kcmb_to_map_unit(band: str) -> float:
    """Factor converting K_CMB into the band's map unit (CMB anisotropies)."""
    ch = channel(band)
    if ch.unit == "K_CMB":
        return 1.0
    if ch.unit == "MJy/sr":
        return ch.kcmb_to_mjysr
    raise ValueError(f"band {band} (unit {ch.unit}) has no CMB scale")
