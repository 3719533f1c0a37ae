"""Settings of the mock Planck sky (``planck.simulate`` in the config): one dataclass whose
fields are the config keys; their defaults, descriptions and the sources of the numbers are
in ``config/schema.yaml`` (``../shared/docs/sky-model.md`` §1)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from skydetect.schema import copied_default, schema_defaults

COMPONENTS = ("cmb", "tsz", "ksz", "dust", "cib", "co", "ir_sources", "radio_sources", "noise")
YMAPS = ("ilc", "clean")
_D = schema_defaults("planck.simulate")


@dataclass
class SimulationParams:
    """Mock-sky settings; every field is a key of ``planck.simulate`` in the config."""

    m500_min: float = _D["m500_min"]
    z_min: float = _D["z_min"]
    z_max: float = _D["z_max"]
    n_clusters: int | None = _D["n_clusters"]
    ym_scatter: bool = _D["ym_scatter"]
    known_snr: float = _D["known_snr"]
    known_min_abs_glat: float = _D["known_min_abs_glat"]
    known_redshift_fraction: float = _D["known_redshift_fraction"]
    mcxc_count: int = _D["mcxc_count"]
    redmapper_min_lambda: float = _D["redmapper_min_lambda"]
    redmapper_min_glat: float = _D["redmapper_min_glat"]
    n_ir_sources: int = _D["n_ir_sources"]
    n_radio_sources: int = _D["n_radio_sources"]
    sources_on_clusters_fraction: float = _D["sources_on_clusters_fraction"]
    ir_flux_min_mjy: float = _D["ir_flux_min_mjy"]
    ir_count_slope: float = _D["ir_count_slope"]
    ir_temperature: float = _D["ir_temperature"]
    ir_beta: float = _D["ir_beta"]
    radio_flux_min_mjy: float = _D["radio_flux_min_mjy"]
    radio_count_slope: float = _D["radio_count_slope"]
    radio_index: float = _D["radio_index"]
    dust_amplitude_353: float = _D["dust_amplitude_353"]
    dust_plane_width_deg: float = _D["dust_plane_width_deg"]
    dust_temperature: float = _D["dust_temperature"]
    dust_beta: float = _D["dust_beta"]
    dust_fluctuation: float = _D["dust_fluctuation"]
    dust_cl_index: float = _D["dust_cl_index"]
    dust_temperature_sigma: float = _D["dust_temperature_sigma"]
    dust_beta_sigma: float = _D["dust_beta_sigma"]
    co_plane_kkms: float = _D["co_plane_kkms"]
    co_scale_height_deg: float = _D["co_scale_height_deg"]
    co_floor_fraction: float = _D["co_floor_fraction"]
    co_kcmb_per_kkms: dict = copied_default(_D, "co_kcmb_per_kkms")
    cib_cl_545_at_1000: float = _D["cib_cl_545_at_1000"]
    cib_cl_index: float = _D["cib_cl_index"]
    cib_temperature: float = _D["cib_temperature"]
    cib_beta: float = _D["cib_beta"]
    cib_correlation: dict = copied_default(_D, "cib_correlation")
    # cluster shapes (skydetect.sky.cluster_shapes): scatter around Arnaud 2010
    profile_library_size: int = _D["profile_library_size"]
    profile_c500_scatter_dex: float = _D["profile_c500_scatter_dex"]
    profile_gamma_sigma: float = _D["profile_gamma_sigma"]
    profile_alpha_scatter_dex: float = _D["profile_alpha_scatter_dex"]
    profile_beta_sigma: float = _D["profile_beta_sigma"]
    axis_ratio_mean: float = _D["axis_ratio_mean"]
    axis_ratio_sigma: float = _D["axis_ratio_sigma"]
    ksz_velocity_rms_kms: float = _D["ksz_velocity_rms_kms"]
    relativistic_tsz: bool = _D["relativistic_tsz"]
    calibration_error: dict = copied_default(_D, "calibration_error")
    pixel_window: bool = _D["pixel_window"]
    beam_fwhm_arcmin: dict = copied_default(_D, "beam_fwhm_arcmin")
    noise_scale: float = _D["noise_scale"]
    noise_hits_ratio: float = _D["noise_hits_ratio"]
    ymap: str = _D["ymap"]
    ilc_bin_width: int = _D["ilc_bin_width"]
    position_scatter: float = _D["position_scatter"]
    mcxc_pos_err_arcmin: float = _D["mcxc_pos_err_arcmin"]
    redmapper_pos_err_arcmin: float = _D["redmapper_pos_err_arcmin"]
    components: tuple = tuple(_D["components"])
    positions_from: str | None = _D["positions_from"]

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
        if cfg.get("ymap", _D["ymap"]) not in YMAPS:
            raise ValueError(f"planck.simulate.ymap: {cfg['ymap']!r} is not one of {YMAPS}")
        return cls(**cfg)
