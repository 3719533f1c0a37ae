"""Settings of the mock Planck sky (``planck.simulate`` in the config): one dataclass whose
fields are the config keys, with their defaults and the sources of the numbers
(``../shared/docs/sky-model.md`` §1; descriptions in ``config/schema.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

COMPONENTS = ("cmb", "tsz", "ksz", "dust", "cib", "co", "ir_sources", "radio_sources", "noise")
DEFAULT_COMPONENTS = COMPONENTS
YMAPS = ("ilc", "clean")
# CIB correlation of each channel with a common field: r_i r_j between channels
# (545 x 857: 0.94; lower towards 353 and 217 GHz, Planck 2013 XXX)
CIB_CORRELATION = {"100": 0.6, "143": 0.7, "217": 0.8, "353": 0.9, "545": 0.97, "857": 0.97}
# CO(1-0)-equivalent line response inside the bands, K_CMB per K km/s (Planck 2013 XIII)
CO_KCMB_PER_KKMS = {"100": 15e-6, "217": 45e-6, "353": 175e-6}
# rms calibration error of each channel map (Planck 2018 III: CMB dipole <~0.5 % at
# 100-353 GHz, planets ~5 % at 545/857 GHz)
CALIBRATION_ERROR = {"100": 0.005, "143": 0.005, "217": 0.005, "353": 0.005, "545": 0.05,
                     "857": 0.05}  # fmt: skip


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
    dust_temperature_sigma: float = 1.4  # K, smooth sky dispersion (Planck 2013 XI)
    dust_beta_sigma: float = 0.1
    co_plane_kkms: float = 30.0  # W_CO in the plane (K km/s) ...
    co_scale_height_deg: float = 3.0  # ... falling as exp(-|b| / this) ...
    co_floor_fraction: float = 0.01  # ... to this fraction of it at high latitude
    co_kcmb_per_kkms: dict = field(default_factory=lambda: dict(CO_KCMB_PER_KKMS))
    cib_cl_545_at_1000: float = 2e-9  # (MJy/sr)^2 sr at ell = 1000
    cib_cl_index: float = -1.2
    cib_temperature: float = 10.0  # effective (redshifted) MBB of the CIB SED
    cib_beta: float = 1.5
    cib_correlation: dict = field(default_factory=lambda: dict(CIB_CORRELATION))
    # cluster shapes (skydetect.sky.cluster_shapes): scatter around Arnaud 2010
    profile_library_size: int = 512
    profile_c500_scatter_dex: float = 0.2  # A10 / Planck Int. V individual fits: c500 0.5-3
    profile_gamma_sigma: float = 0.2  # gamma 0-0.8
    profile_alpha_scatter_dex: float = 0.1  # A10 cool-core / disturbed: alpha 1.22 / 1.41
    profile_beta_sigma: float = 1.0  # outer slope 3-8
    axis_ratio_mean: float = 0.8  # projected axis ratio (Kawahara 2010; Lau et al. 2012)
    axis_ratio_sigma: float = 0.1
    ksz_velocity_rms_kms: float = 300.0  # line-of-sight peculiar velocity rms (LCDM, z < 1)
    relativistic_tsz: bool = True  # Itoh et al. 1998 first order, T from Arnaud 2005 M-T
    calibration_error: dict = field(default_factory=lambda: dict(CALIBRATION_ERROR))
    pixel_window: bool = True
    beam_fwhm_arcmin: dict = field(default_factory=dict)  # per-band override (tests)
    noise_scale: float = 1.0
    noise_hits_ratio: float = 10.0  # hit counts at the ecliptic poles / at the ecliptic
    ymap: str = "ilc"  # ilc: from the six channels | clean: true y + own noise (tests only)
    ilc_bin_width: int = 20
    position_scatter: float = 1.0  # multiplier of the catalogues' position errors (0: exact)
    mcxc_pos_err_arcmin: float = 0.3
    redmapper_pos_err_arcmin: float = 0.5
    components: tuple = DEFAULT_COMPONENTS
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
        if cfg.get("ymap", "ilc") not in YMAPS:
            raise ValueError(f"planck.simulate.ymap: {cfg['ymap']!r} is not one of {YMAPS}")
        return cls(**cfg)
