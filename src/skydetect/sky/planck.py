"""The mock Planck HFI sky: six channel maps and a MILCA-like y-map with known truth.

Components (``../shared/docs/sky-model.md`` §1; physics in :mod:`skydetect.sky.physics`,
instrument numbers in :mod:`skydetect.sky.instrument`):

- ``cmb``: a Gaussian realisation of the lensed Planck-2018 TT spectrum, identical in K_CMB
  at every channel;
- ``tsz``: clusters drawn from the Tinker 2008 mass function (or placed at the rows of a
  real PSZ2/MCXC file), Arnaud 2010 profiles truncated at 5 R500, Y5R500 from the Planck
  Y-M relation with scatter, scaled by the band-integrated tSZ factors;
- ``dust``: modified black body (T_d, beta_d), 353 GHz amplitude rising as a cosecant
  towards the plane, times a log-normal small-scale field with C_ell ~ ell^index;
- ``cib``: Gaussian anisotropies with C_ell ~ ell^-1.2 at 545 GHz, scaled by an MBB SED;
  857 GHz correlated with 545 GHz by a configurable coefficient;
- ``ir_sources`` / ``radio_sources``: compact sources with power-law number counts and one
  SED per population (MBB / power law), a fraction of them on clusters;
- ``noise``: white noise per pixel (scaled with nside); beams (Gaussian FWHM) and the pixel
  window per channel.

Efficiency: pixel-space templates (y, dust, IR, radio) are transformed once each
(``map2alm``); CMB and CIB are drawn directly as alms; each channel is one weighted sum of
alms, one beam multiplication and one ``alm2map``.

S/N of each cluster (truth column ``SNR``): the noise of a multi-frequency matched filter
(Melin et al. 2006) for the cluster's own profile, with the mock's full-sky cross-spectra of
all non-tSZ components (CMB, CIB, sources, dust rescaled to its |b| > 30 deg level) plus
white noise, the channel beams and pixel window, up to ell = 3 nside - 1:
sigma_Y^-2 = sum_ell (2 ell + 1)/(4 pi) |u(ell theta500)|^2 tau_ell^T C_ell^-1 tau_ell,
tau_ell,nu = (tSZ factor)_nu b_ell,nu; SNR = Y5R500 / sigma_Y(theta500). It is a global
estimate (no local dust, no position error), close to what an MMF run would find.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields

import healpy as hp
import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from skydetect.io.catalogs import PSZ2_NO_REDSHIFT
from skydetect.sky import physics
from skydetect.sky.instrument import CHANNELS, channel, noise_per_pixel

log = logging.getLogger(__name__)

FREQ_BANDS = ("100", "143", "217", "353", "545", "857")
COMPONENTS = ("cmb", "tsz", "dust", "cib", "ir_sources", "radio_sources", "noise")
STAGE = 2  # seed stream of the sky simulation: default_rng([seed, STAGE, substream])


@dataclass
class SimulationParams:
    """Mock-sky settings; every field is a key of ``planck.simulate`` in the config."""

    m500_min: float = 1.0  # 1e14 Msun: lightest cluster drawn
    z_min: float = 0.01
    z_max: float = 1.5
    n_clusters: int | None = None  # None: Poisson draw of the mass-function expectation
    ym_scatter: bool = True
    known_snr: float = 4.5  # PSZ2-like catalogue: measured S/N above this ...
    known_min_abs_glat: float = 10.0  # ... outside the Galactic plane
    known_redshift_fraction: float = 0.66  # PSZ2: 1093 of 1653 with redshift
    mcxc_count: int = 1750  # X-ray-like catalogue: brightest in an X-ray flux proxy
    redmapper_min_lambda: float = 20.0
    redmapper_min_glat: float = 30.0  # optical footprint: northern cap b > this, dec > -5
    n_ir_sources: int = 4000
    n_radio_sources: int = 2000
    sources_on_clusters_fraction: float = 0.05
    ir_flux_min_mjy: float = 300.0  # at 545 GHz
    ir_count_slope: float = 2.5  # dN/dS ~ S^-slope
    ir_temperature: float = 25.0
    ir_beta: float = 1.5
    radio_flux_min_mjy: float = 150.0  # at 100 GHz
    radio_count_slope: float = 2.2
    radio_index: float = -0.7
    dust_amplitude_353: float = 0.03  # MJy/sr towards the poles
    dust_plane_width_deg: float = 0.5  # cosecant law softened within this latitude
    dust_temperature: float = 19.6
    dust_beta: float = 1.53
    dust_fluctuation: float = 0.6  # sigma of the log-normal small-scale field
    dust_cl_index: float = -2.6
    cib_cl_545_at_1000: float = 2e-9  # (MJy/sr)^2 sr at ell = 1000
    cib_cl_index: float = -1.2
    cib_temperature: float = 10.0  # effective (redshifted) MBB of the CIB SED
    cib_beta: float = 1.5
    cib_correlation_545_857: float = 0.95
    pixel_window: bool = True
    beam_fwhm_arcmin: dict = field(default_factory=dict)  # per-band override (tests)
    noise_scale: float = 1.0
    components: tuple = COMPONENTS
    positions_from: str | None = None

    @classmethod
    def from_config(cls, cfg: dict | None) -> SimulationParams:
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown planck.simulate key(s): {', '.join(sorted(unknown))}")
        if "components" in cfg:
            bad = set(cfg["components"]) - set(COMPONENTS)
            if bad:
                raise ValueError(f"planck.simulate.components: unknown {sorted(bad)}")
            cfg["components"] = tuple(cfg["components"])
        return cls(**cfg)


def _rng(seed: int, sub: int) -> np.random.Generator:
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


def _power_law_draw(rng, n, s_min, slope):
    """Fluxes from dN/dS ~ S^-slope above s_min (inverse CDF)."""
    return s_min * (1.0 - rng.random(n)) ** (-1.0 / (slope - 1.0))


def _names_from_glon_glat(prefix: str, glon, glat) -> np.ndarray:
    return np.array([f"{prefix}G{lo:06.2f}{la:+06.2f}" for lo, la in zip(glon, glat, strict=True)])


# --------------------------------------------------------------------------- populations
def draw_clusters(params: SimulationParams, seed: int) -> Table:
    """Truth clusters: ID GLON GLAT RA DEC M500 Z THETA500 Y5R500 (SNR, KNOWN added later)."""
    rng = _rng(seed, 0)
    y_given = None
    if params.positions_from:
        glon, glat, m500, z, y_given = _clusters_from_file(params, rng)
    else:
        m500, z = physics.sample_clusters(
            rng, params.m500_min, params.n_clusters, z_min=params.z_min, z_max=params.z_max
        )
        n = m500.size
        glon = rng.uniform(0.0, 360.0, n)
        glat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    y5r500 = physics.y5r500_arcmin2(m500, z, rng=rng if params.ym_scatter else None)
    if y_given is not None:  # the file's published Y5R500 where it has one
        ok = np.isfinite(y_given) & (y_given > 0)
        y5r500[ok] = y_given[ok]
    theta500 = physics.theta500_arcmin(m500, z)
    icrs = SkyCoord(l=glon * u.deg, b=glat * u.deg, frame="galactic").icrs
    t = Table()
    t["ID"] = np.arange(1, glon.size + 1, dtype=np.int64)
    t["GLON"] = glon * u.deg
    t["GLAT"] = glat * u.deg
    t["RA"] = icrs.ra.deg * u.deg
    t["DEC"] = icrs.dec.deg * u.deg
    t["M500"] = m500 * u.Unit("1e14 solMass")
    t["Z"] = z
    t["THETA500"] = theta500 * u.arcmin
    t["Y5R500"] = y5r500 * u.arcmin**2
    return t


def _clusters_from_file(params, rng):
    """Positions, and masses/redshifts (and PSZ2 Y5R500) where given, from a real PSZ2 or
    MCXC file; rows without mass or redshift get a draw from the mass function above
    max(m500_min, 3e14 Msun)."""
    from skydetect.io import catalogs

    path = params.positions_from
    try:
        t = catalogs.read_psz2(path)
        m = np.asarray(t["MSZ"], float) / (1.0 - physics.YMRelation().bias)
        z = np.asarray(t["REDSHIFT"], float)
        y = np.asarray(t["Y5R500"], float) * 1e-3  # file unit: 1e-3 arcmin^2
    except catalogs.CatalogError:
        t = catalogs.read_mcxc(path)
        m = np.asarray(t["M500"], float)
        z = np.asarray(t["z"], float)
        y = np.full(len(t), np.nan)
    missing = ~((m > 0) & (z > 0) & np.isfinite(m) & np.isfinite(z))
    if missing.any():  # unknown mass or redshift: a draw from the mass function
        m_draw, z_draw = physics.sample_clusters(
            rng, max(params.m500_min, 3.0), int(missing.sum()), z_min=params.z_min, z_max=1.0
        )
        m[missing], z[missing] = m_draw, z_draw
    log.info(
        "clusters placed at the %d rows of %s (%d with drawn M500/z)", len(t), path, missing.sum()
    )
    return np.asarray(t["GLON"], float), np.asarray(t["GLAT"], float), m, z, y


def draw_sources(params: SimulationParams, seed: int, truth: Table, bands) -> Table:
    """IR (dusty galaxies, cold clumps) and radio sources: ID GLON GLAT TYPE FLUX_<band> [mJy]."""
    rng = _rng(seed, 1)
    n_ir, n_radio = params.n_ir_sources, params.n_radio_sources
    n = n_ir + n_radio
    glon = rng.uniform(0.0, 360.0, n)
    glat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    on = rng.random(n) < params.sources_on_clusters_fraction
    if len(truth) and on.any():  # within 0.5 theta500 of a random cluster
        host = rng.integers(0, len(truth), on.sum())
        sep = rng.uniform(0, 0.5, on.sum()) * np.asarray(truth["THETA500"])[host] / 60.0
        c = SkyCoord(
            l=np.asarray(truth["GLON"])[host] * u.deg,
            b=np.asarray(truth["GLAT"])[host] * u.deg,
            frame="galactic",
        ).directional_offset_by(rng.uniform(0, 360, on.sum()) * u.deg, sep * u.deg)
        glon[on], glat[on] = c.l.deg, c.b.deg
    ir = np.arange(n) < n_ir
    s_ref = np.where(
        ir,
        _power_law_draw(rng, n, params.ir_flux_min_mjy, params.ir_count_slope),
        _power_law_draw(rng, n, params.radio_flux_min_mjy, params.radio_count_slope),
    )
    t = Table()
    t["ID"] = np.arange(1, n + 1, dtype=np.int64)
    t["GLON"] = glon * u.deg
    t["GLAT"] = glat * u.deg
    t["TYPE"] = np.where(ir, "ir", "radio")
    t["ON_CLUSTER"] = on
    for band in FREQ_BANDS:
        t[f"FLUX_{band}"] = (
            s_ref * np.where(ir, ir_sed(params, band), radio_sed(params, band)) * u.mJy
        )
    return t


def ir_sed(params, band):
    return physics.modified_blackbody(
        channel(band).freq_ghz, 545.0, params.ir_temperature, params.ir_beta
    )


def radio_sed(params, band):
    return physics.power_law(channel(band).freq_ghz, 100.0, params.radio_index)


def dust_sed(params, band):
    return physics.modified_blackbody(
        channel(band).freq_ghz, 353.0, params.dust_temperature, params.dust_beta
    )


def cib_sed(params, band):
    return physics.modified_blackbody(
        channel(band).freq_ghz, 545.0, params.cib_temperature, params.cib_beta
    )


# --------------------------------------------------------------------------- templates
def paint_clusters(nside: int, truth: Table, progress: bool = True) -> np.ndarray:
    """Compton-y map (RING): each cluster's projected Arnaud profile painted within 5 theta500.

    Pixel values are renormalised so that each cluster's integrated y equals its Y5R500.
    """
    from tqdm import tqdm

    x_tab, f_tab = physics.projected_profile()
    ymap = np.zeros(hp.nside2npix(nside))
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
        ymap[pix] += y5[i] * prof / (prof.sum() * pix_area)
    return ymap


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


def dust_template_353(nside: int, params: SimulationParams, rng, lmax: int) -> np.ndarray:
    """353 GHz dust intensity [MJy/sr]: cosecant latitude law times a log-normal field."""
    cl = power_law_cl(lmax, 1.0, params.dust_cl_index)
    g = hp.alm2map(gaussian_alm(cl, lmax, rng), nside, lmax=lmax)
    g /= g.std()
    theta, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    sinb = np.abs(np.cos(theta))
    large = params.dust_amplitude_353 / (sinb + np.sin(np.radians(params.dust_plane_width_deg)))
    s = params.dust_fluctuation
    return large * np.exp(s * g - 0.5 * s * s)


# --------------------------------------------------------------------------- the sky
@dataclass
class MockSky:
    """All templates and alms of one simulated sky; :meth:`channel_map` makes each map."""

    nside: int
    bands: tuple
    seed: int
    params: SimulationParams
    progress: bool = True
    lmax: int = field(init=False)
    truth: Table = field(init=False)
    sources: Table = field(init=False)
    alms: dict = field(init=False, default_factory=dict)
    snr_table: tuple = field(init=False)

    def __post_init__(self):
        self.lmax = 3 * self.nside - 1
        self.bands = tuple(str(b) for b in self.bands)
        p = self.params
        on = set(p.components)
        self.truth = draw_clusters(p, self.seed)
        log.info("%d clusters drawn (M500 > %.2g 1e14 Msun)", len(self.truth), p.m500_min)
        self.sources = draw_sources(p, self.seed, self.truth, FREQ_BANDS)
        lmax, nside = self.lmax, self.nside
        if "tsz" in on:
            self.ymap = paint_clusters(nside, self.truth, self.progress)
            self.alms["tsz"] = hp.map2alm(self.ymap, lmax=lmax, iter=0)
        if "cmb" in on:
            self.alms["cmb"] = gaussian_alm(physics.cmb_cl(lmax), lmax, _rng(self.seed, 2))
        if "dust" in on:
            dust = dust_template_353(nside, p, _rng(self.seed, 3), lmax)
            hi = np.abs(hp.pix2ang(nside, np.arange(dust.size), lonlat=True)[1]) > 30.0
            self.dust_highlat_power = float(np.mean(dust[hi] ** 2) / np.mean(dust**2))
            self.alms["dust"] = hp.map2alm(dust, lmax=lmax, iter=0)
            del dust
        if "cib" in on:
            cl = power_law_cl(lmax, p.cib_cl_545_at_1000, p.cib_cl_index)
            rng = _rng(self.seed, 4)
            self.alms["cib"] = gaussian_alm(cl, lmax, rng)
            self.alms["cib_857_extra"] = gaussian_alm(cl, lmax, rng)
        is_ir = np.asarray(self.sources["TYPE"]) == "ir"
        if "ir_sources" in on:
            self.alms["ir_sources"] = hp.map2alm(
                source_template(nside, self.sources, "FLUX_545", is_ir), lmax=lmax, iter=0
            )
        if "radio_sources" in on:
            self.alms["radio_sources"] = hp.map2alm(
                source_template(nside, self.sources, "FLUX_100", ~is_ir), lmax=lmax, iter=0
            )
        self._compute_snr()

    # ---------------------------------------------------------------- per channel
    def fwhm(self, band: str) -> float:
        return float(self.params.beam_fwhm_arcmin.get(band, channel(band).fwhm_arcmin))

    def window(self, band: str) -> np.ndarray:
        b = hp.gauss_beam(np.radians(self.fwhm(band) / 60.0), lmax=self.lmax)
        if self.params.pixel_window:
            b = b * pixel_window(self.nside, self.lmax)
        return b

    def scales(self, band: str) -> dict[str, float]:
        """Multiplier of each component alm in the band's map unit (before the beam)."""
        p = self.params
        if band == "y":
            return {"tsz": 1.0}
        ch = channel(band)
        to_unit = physics.mjysr_to_map_unit(band)
        r = p.cib_correlation_545_857
        cib = cib_sed(p, band) * to_unit
        return {
            "cmb": physics.kcmb_to_map_unit(band),
            "tsz": ch.tsz_per_y,
            "dust": dust_sed(p, band) * to_unit,
            "cib": cib * (r if band == "857" else 1.0),
            "cib_857_extra": cib * np.sqrt(1.0 - r * r) if band == "857" else 0.0,
            "ir_sources": ir_sed(p, band) * to_unit,
            "radio_sources": radio_sed(p, band) * to_unit,
        }

    def noise_sigma(self, band: str) -> float:
        if "noise" not in self.params.components:
            return 0.0
        return noise_per_pixel(band, self.nside) * self.params.noise_scale

    def channel_map(self, band: str) -> np.ndarray:
        """The RING map of ``band`` in its unit (float64)."""
        alm = np.zeros(hp.Alm.getsize(self.lmax), dtype=complex)
        for comp, s in self.scales(band).items():
            if comp in self.alms and s != 0.0:
                alm += s * self.alms[comp]
        sigma = self.noise_sigma(band)
        rng = _rng(self.seed, 10 + list(CHANNELS).index(band))
        if band == "y" and sigma > 0:
            # MILCA-like: noise at the map's resolution (white per pixel, then the 10' beam)
            cl = np.full(self.lmax + 1, sigma**2 * hp.nside2pixarea(self.nside))
            alm += gaussian_alm(cl, self.lmax, rng)
            sigma = 0.0
        hp.almxfl(alm, self.window(band), inplace=True)
        m = hp.alm2map(alm, self.nside, lmax=self.lmax)
        if sigma > 0:
            m += sigma * rng.standard_normal(m.size)
        return m

    # ---------------------------------------------------------------- matched-filter S/N
    def _compute_snr(self):
        bands = [b for b in FREQ_BANDS]
        lmax = self.lmax
        ell = np.arange(lmax + 1)
        nb = len(bands)
        win = np.array([self.window(b) for b in bands])  # (nb, L)
        cov = np.zeros((lmax + 1, nb, nb))
        comp_cl = {}
        for comp, alm in self.alms.items():
            if comp == "tsz":
                continue
            cl = hp.alm2cl(alm, lmax=lmax)
            if comp == "dust":
                cl = cl * self.dust_highlat_power
            comp_cl[comp] = cl
        for comp, cl in comp_cl.items():
            s = np.array([self.scales(b)[comp] for b in bands])
            sv = s[:, None] * win  # (nb, L)
            cov += cl[:, None, None] * np.einsum("il,jl->lij", sv, sv)
        omega = hp.nside2pixarea(self.nside)
        level = max(self.params.noise_scale, 1e-6)  # the instrument noise, even if not simulated
        noise = np.array([(noise_per_pixel(b, self.nside) * level) ** 2 * omega for b in bands])
        cov[:, np.arange(nb), np.arange(nb)] += noise[None, :]
        tau = np.array([channel(b).tsz_per_y for b in bands])[:, None] * win  # (nb, L)
        tau_l = tau.T  # (L, nb)
        sol = np.linalg.solve(cov[2:], tau_l[2:, :, None])[..., 0]
        weight = np.zeros(lmax + 1)
        weight[2:] = np.einsum("li,li->l", tau_l[2:], sol) * (2 * ell[2:] + 1) / (4 * np.pi)
        theta_grid = np.geomspace(0.3, 60.0, 40)  # arcmin
        sig = np.empty(theta_grid.size)
        for i, th in enumerate(theta_grid):
            uk = physics.profile_transform(ell * np.radians(th / 60.0))
            sig[i] = 1.0 / np.sqrt(np.sum(weight * uk**2)) * physics.ARCMIN_PER_RAD**2
        self.snr_table = (theta_grid, sig)
        theta = np.asarray(self.truth["THETA500"], float)
        sigma_y = np.exp(np.interp(np.log(theta), np.log(theta_grid), np.log(sig)))
        self.truth["SNR"] = np.asarray(self.truth["Y5R500"], float) / sigma_y
        log.info(
            "matched-filter sigma_Y5R500: %.2e arcmin^2 at theta500 = 3', %.2e at 10'",
            np.interp(3.0, theta_grid, sig),
            np.interp(10.0, theta_grid, sig),
        )


# --------------------------------------------------------------------------- catalogues
def known_catalogues(sky: MockSky) -> dict:
    """PSZ2-, MCXC- and redMaPPer-like subsets of the truth; sets truth ``KNOWN``.

    - PSZ2: measured S/N (true S/N + unit Gaussian) >= ``known_snr`` outside
      ``|b| < known_min_abs_glat``; redshift known for ``known_redshift_fraction``
      (-1 otherwise, as in the real file); ``MSZ`` = (1 - b) M500 with 10 % scatter.
    - MCXC: the ``mcxc_count`` brightest in an X-ray flux proxy
      L ~ M^1.64 E(z)^(7/3) (0.2 dex scatter) / D_L^2, outside |b| < 5 deg.
    - redMaPPer: footprint b > ``redmapper_min_glat`` and dec > -5, 0.08 < z < 0.6,
      richness lambda = 40 (M500 / 1.9e14)^0.75 with 25 % log scatter, lambda >= min.
    """
    p = sky.params
    truth = sky.truth
    rng = _rng(sky.seed, 6)
    n = len(truth)
    glon, glat = np.asarray(truth["GLON"], float), np.asarray(truth["GLAT"], float)
    ra, dec = np.asarray(truth["RA"], float), np.asarray(truth["DEC"], float)
    m500, z = np.asarray(truth["M500"], float), np.asarray(truth["Z"], float)
    snr_meas = np.asarray(truth["SNR"], float) + rng.standard_normal(n)
    in_psz2 = (snr_meas >= p.known_snr) & (np.abs(glat) >= p.known_min_abs_glat)
    # X-ray
    dl = physics.COSMO.luminosity_distance(z).to_value(u.Mpc)
    lx = m500**1.64 * physics.ez(z) ** (7.0 / 3.0) * 10 ** (0.2 * rng.standard_normal(n))
    fx = np.where(np.abs(glat) >= 5.0, lx / dl**2, 0.0)
    order = np.argsort(-fx)
    in_mcxc = np.zeros(n, bool)
    in_mcxc[order[: min(p.mcxc_count, n)]] = True
    # optical
    lam = 40.0 * (m500 / 1.9) ** 0.75 * np.exp(0.25 * rng.standard_normal(n))
    in_rm = (
        (glat > p.redmapper_min_glat)
        & (dec > -5.0)
        & (z > 0.08)
        & (z < 0.6)
        & (lam >= p.redmapper_min_lambda)
    )
    truth["KNOWN"] = in_psz2 | in_mcxc

    mcxc_names = np.array([_j2000_name("J", r, d) for r, d in zip(ra, dec, strict=True)])
    rm_names = np.array(
        [_j2000_name("RMJ", r, d, precise=True) for r, d in zip(ra, dec, strict=True)]
    )
    i = np.flatnonzero(in_psz2)
    has_z = rng.random(i.size) < p.known_redshift_fraction
    bias = physics.YMRelation().bias
    msz = np.where(has_z, (1 - bias) * m500[i] * np.exp(0.1 * rng.standard_normal(i.size)), 0.0)
    y5 = np.asarray(truth["Y5R500"], float)[i] * 1e3 * np.exp(0.2 * rng.standard_normal(i.size))
    psz2 = {
        "NAME": _names_from_glon_glat("PSZ2 ", glon[i], glat[i]),
        "GLON": glon[i],
        "GLAT": glat[i],
        "RA": ra[i],
        "DEC": dec[i],
        "POS_ERR": np.clip(2.0 * 4.5 / snr_meas[i], 0.5, 5.0),
        "SNR": snr_meas[i],
        "PIPELINE": rng.integers(1, 4, i.size),
        "PIPE_DET": np.full(i.size, 111),
        "Y5R500": y5,
        "Y5R500_ERR": y5 / snr_meas[i],
        "REDSHIFT": np.where(has_z, z[i], PSZ2_NO_REDSHIFT),
        "MSZ": msz,
        "MCXC": np.where(in_mcxc[i], mcxc_names[i], ""),
        "REDMAPPER": np.where(in_rm[i], rm_names[i], ""),
        "COSMO": snr_meas[i] >= 6.0,
        "VALIDATION": np.where(has_z, 20, -1),
    }
    j = np.flatnonzero(in_mcxc)
    r500 = physics.r500_mpc(m500[j], z[j])
    mcxc = {
        "MCXC": mcxc_names[j],
        "OName": np.array([f"MOCK{k:06d}" for k in np.asarray(truth["ID"])[j]]),
        "RAdeg": ra[j],
        "DEdeg": dec[j],
        "GLON": glon[j],
        "GLAT": glat[j],
        "z": z[j],
        "L500": lx[j],
        "M500": m500[j],
        "R500": r500,
    }
    k = np.flatnonzero(in_rm)
    redmapper = {
        "NAME": rm_names[k],
        "RA": ra[k],
        "DEC": dec[k],
        "Z_LAMBDA": z[k] + 0.01 * (1 + z[k]) * rng.standard_normal(k.size),
        "LAMBDA": lam[k],
    }
    log.info("known: PSZ2-like %d, MCXC-like %d, redMaPPer-like %d", i.size, j.size, k.size)
    return {"psz2": psz2, "mcxc": mcxc, "redmapper": redmapper}


def _j2000_name(prefix: str, ra: float, dec: float, precise: bool = False) -> str:
    h = ra / 15.0
    hh, mm = int(h), (h - int(h)) * 60.0
    sign = "+" if dec >= 0 else "-"
    d = abs(dec)
    dd, dm = int(d), (d - int(d)) * 60.0
    if precise:
        return f"{prefix}{hh:02d}{mm:04.1f}{sign}{dd:02d}{dm:04.1f}"
    return f"{prefix}{hh:02d}{mm:04.1f}{sign}{dd:02d}{int(dm):02d}"


def truth_table(sky: MockSky) -> Table:
    """The truth catalogue with the column order of docs/dataflow.md and units."""
    cols = ["ID", "GLON", "GLAT", "RA", "DEC", "M500", "Z", "THETA500", "Y5R500", "SNR", "KNOWN"]
    t = sky.truth[cols]
    t.meta["description"] = (
        "Mock Planck sky truth. SNR: matched-multi-frequency-filter S/N estimate "
        "(Y5R500 / sigma_Y(theta500) with the mock's own component spectra, see "
        "skydetect.sky.planck). KNOWN: in the PSZ2-like or MCXC-like catalogue."
    )
    t.meta["nside"] = sky.nside
    t.meta["seed"] = sky.seed
    return t


def write_truth(path, sky: MockSky) -> None:
    """Write :func:`truth_table` as ECSV (through :func:`skydetect.io.atomic.atomic_path`)."""
    from skydetect.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        truth_table(sky).write(tmp, format="ascii.ecsv", overwrite=True)
