"""The mock Planck HFI sky: six channel maps and a y-map made from them, with known truth.

Components (``../shared/docs/sky-model.md`` §1; physics in :mod:`skydetect.sky.physics`,
templates in :mod:`skydetect.sky.foregrounds`, catalogues in :mod:`skydetect.sky.mock_catalogs`,
the y-map and sensitivities in :mod:`skydetect.sky.ymap`):

- ``cmb``: a Gaussian realisation of the lensed Planck-2018 TT spectrum, identical in K_CMB
  at every channel;
- ``ksz``: the clusters' kinetic SZ, dT/T = -tau v/c with the same profiles, line-of-sight
  velocities of ``ksz_velocity_rms_kms`` (300 km/s) rms;
- ``tsz``: clusters drawn from the Tinker 2008 mass function (or placed at the rows of a
  real PSZ2/MCXC file), each with its own GNFW profile scattered around Arnaud 2010 and a
  projected ellipticity (:mod:`skydetect.sky.cluster_shapes`), truncated at 5 R500, Y5R500
  from the Planck Y-M relation with scatter, scaled by the band-integrated tSZ factors plus
  the first-order relativistic term (``tsz_rel``: y theta_e, Itoh et al. 1998);
- ``dust``: modified black body whose T_d and beta_d vary smoothly over the sky, 353 GHz
  amplitude rising as a cosecant towards the plane, times a log-normal small-scale field;
- ``cib``: Gaussian anisotropies with C_ell ~ ell^-1.2 at 545 GHz, an MBB SED, and a
  per-channel correlation with a common field (decorrelating across all channels);
- ``co``: CO lines in the 100, 217 and 353 GHz bands, following the dust structure;
- ``ir_sources`` / ``radio_sources``: compact sources with power-law number counts and one
  SED per population (MBB / power law), a fraction of them on clusters;
- ``noise``: white noise per pixel (scaled with nside) modulated by a hit-count map that is
  deep at the ecliptic poles; beams (Gaussian FWHM) and the pixel window per channel;
- calibration: each channel map times one seeded factor 1 + sigma_nu N(0, 1).

The ``y`` band is a harmonic internal linear combination of the six channel maps at 10'
(:mod:`skydetect.sky.ymap`), so it carries their noise and foreground residuals; ``ymap:
clean`` (tests only) keeps the old true-y-plus-own-noise map, which gives the answer away.
:attr:`MockSky.summary` compares its matched-filter sigma_Y with the six channels'.

Truth S/N: ``SNR_A10`` is the multi-frequency matched filter (Melin et al. 2006) with the
Arnaud 2010 template and the model cross-spectra of all non-tSZ components (mean dust SED,
dust and CO rescaled to their |b| > 30 deg power) plus the mean white noise, the channel beams
and pixel window, up to ell = 3 nside - 1:
sigma_Y^-2 = sum_ell (2 ell + 1)/(4 pi) |u(ell theta500)|^2 tau_ell^T C_ell^-1 tau_ell,
tau_ell,nu = (tSZ factor)_nu b_ell,nu; SNR_A10 = Y5R500 / sigma_Y(theta500). ``SNR`` is the
same filter with the cluster's own profile at its local dust, CO and noise level
(:mod:`skydetect.sky.truth_snr`), which also gives the S/N the A10 template loses.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import healpy as hp
import numpy as np

from skydetect.io.atomic import atomic_path
from skydetect.sky import cluster_shapes as shapes
from skydetect.sky import foregrounds as fg
from skydetect.sky import physics, truth_snr, ymap
from skydetect.sky.foregrounds import gaussian_alm, pixel_window, power_law_cl  # noqa: F401
from skydetect.sky.instrument import CHANNELS, T_CMB, channel, noise_per_pixel
from skydetect.sky.mock_catalogs import (  # noqa: F401  (the public API of the mock sky)
    FREQ_BANDS,
    draw_clusters,
    draw_sources,
    known_catalogues,
    truth_table,
    write_truth,
)
from skydetect.sky.params import (  # noqa: F401
    COMPONENTS,
    YMAPS,
    SimulationParams,
)

log = logging.getLogger(__name__)

STAGE = fg.STAGE

_rng = fg.rng_stream


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
    truth: object = field(init=False)
    sources: object = field(init=False)
    alms: dict = field(init=False, default_factory=dict)
    snr_table: tuple = field(init=False)
    summary: dict | None = field(init=False, default=None)

    def __post_init__(self):
        self.lmax = 3 * self.nside - 1
        self.bands = tuple(str(b) for b in self.bands)
        p = self.params
        on = set(p.components)
        self.truth = draw_clusters(p, self.seed)
        log.info("%d clusters drawn (M500 > %.2g 1e14 Msun)", len(self.truth), p.m500_min)
        self.sources = draw_sources(p, self.seed, self.truth, FREQ_BANDS)
        self.calibration = fg.calibration_factors(p, self.seed, FREQ_BANDS)
        lmax, nside = self.lmax, self.nside
        self._signal: dict[str, np.ndarray] = {}
        self._ymap = None
        self.highlat_power: dict[str, float] = {}
        hi = np.abs(hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)[1]) > 30.0
        self._paint_clusters(on)
        if "cmb" in on:
            self.alms["cmb"] = gaussian_alm(physics.cmb_cl(lmax), lmax, _rng(self.seed, 2))
        if on & {"dust", "co"}:
            structure = fg.dust_structure(nside, p, _rng(self.seed, 3), lmax)
            if "dust" in on:
                amp = fg.dust_template_353(nside, p, structure)
                self.highlat_power["dust"] = float(np.mean(amp[hi] ** 2) / np.mean(amp**2))
                self.alms["dust"] = hp.map2alm(amp, lmax=lmax, iter=0)  # mean-SED template
                t_d, b_d = fg.dust_parameter_maps(nside, p, _rng(self.seed, 8))
                self._dust = (amp, t_d, b_d)
            if "co" in on:
                w_co = fg.co_template(nside, p, structure)
                self.highlat_power["co"] = float(np.mean(w_co[hi] ** 2) / np.mean(w_co**2))
                self.alms["co"] = hp.map2alm(w_co, lmax=lmax, iter=0)
                del w_co
            del structure
        if "cib" in on:
            cl = power_law_cl(lmax, p.cib_cl_545_at_1000, p.cib_cl_index)
            self.alms["cib"] = gaussian_alm(cl, lmax, _rng(self.seed, 4))
            self._cib_cl = cl
        is_ir = np.asarray(self.sources["TYPE"]) == "ir"
        if "ir_sources" in on:
            self.alms["ir_sources"] = hp.map2alm(
                fg.source_template(nside, self.sources, "FLUX_545", is_ir), lmax=lmax, iter=0
            )
        if "radio_sources" in on:
            self.alms["radio_sources"] = hp.map2alm(
                fg.source_template(nside, self.sources, "FLUX_100", ~is_ir), lmax=lmax, iter=0
            )
        self.modulation = fg.noise_modulation(nside, p.noise_hits_ratio)
        self._compute_snr()

    def _paint_clusters(self, on: set):
        """Shapes, temperatures and velocities of the truth clusters; the tsz, tsz_rel
        (y theta_e, the relativistic term) and ksz alms."""
        p, t = self.params, self.truth
        self.shapes = shapes.draw_library(p, _rng(self.seed, 31))
        shapes.assign_shapes(t, self.shapes, _rng(self.seed, 32))
        t["T_KEV"] = physics.temperature_kev(
            np.asarray(t["M500"], float), np.asarray(t["Z"], float)
        )
        w, t["V_LOS"] = fg.ksz_weights(t, _rng(self.seed, 9), p.ksz_velocity_rms_kms)
        weights = {"ksz": w} if "ksz" in on else {}
        if "tsz" in on and p.relativistic_tsz:
            weights["tsz_rel"] = np.asarray(t["T_KEV"], float) / physics.M_E_C2_KEV
        if not on & {"tsz", "ksz"}:
            return
        maps = shapes.paint_clusters(self.nside, t, self.shapes, weights, self.progress)
        if "tsz" not in on:
            del maps["y"]
        for name, m in maps.items():
            self.alms["tsz" if name == "y" else name] = hp.map2alm(m, lmax=self.lmax, iter=0)
        del maps

    # ---------------------------------------------------------------- per channel
    def fwhm(self, band: str) -> float:
        return float(self.params.beam_fwhm_arcmin.get(band, channel(band).fwhm_arcmin))

    def window(self, band: str) -> np.ndarray:
        b = hp.gauss_beam(np.radians(self.fwhm(band) / 60.0), lmax=self.lmax)
        if self.params.pixel_window:
            b = b * pixel_window(self.nside, self.lmax)
        return b

    def scales(self, band: str) -> dict[str, float]:
        """Multiplier of each band-independent component alm in the band's map unit (before
        the beam); ``dust`` at the mean SED, ``cib`` of the common field."""
        p = self.params
        if band == "y":
            return {"tsz": 1.0}
        to_unit = physics.mjysr_to_map_unit(band)
        kcmb = physics.kcmb_to_map_unit(band)
        return {
            "cmb": kcmb,
            "ksz": kcmb,  # a Doppler shift of the CMB: the CMB's spectrum
            "tsz": channel(band).tsz_per_y,
            "tsz_rel": T_CMB * physics.tsz_y1(channel(band).freq_ghz) * kcmb,  # per y theta_e
            "dust": fg.dust_sed(p, band) * to_unit,
            "cib": fg.cib_sed(p, band) * to_unit * fg.cib_correlation(p, band),
            "co": fg.co_scale(p, band) * kcmb,
            "ir_sources": fg.ir_sed(p, band) * to_unit,
            "radio_sources": fg.radio_sed(p, band) * to_unit,
        }

    def noise_sigma(self, band: str) -> float:
        if "noise" not in self.params.components:
            return 0.0
        return noise_per_pixel(band, self.nside) * self.params.noise_scale

    def noise_map(self, band: str) -> np.ndarray:
        """White noise of ``band`` modulated by the hit counts (zero without ``noise``)."""
        sigma = self.noise_sigma(band)
        npix = hp.nside2npix(self.nside)
        if sigma == 0:
            return np.zeros(npix)
        rng = _rng(self.seed, 10 + list(CHANNELS).index(band))
        return sigma * self.calibration.get(band, 1.0) * self.modulation * rng.standard_normal(npix)

    def signal_alm(self, band: str) -> np.ndarray:
        """The beamed, noiseless alm of frequency ``band`` in its unit (cached)."""
        if band in self._signal:
            return self._signal[band]
        p = self.params
        alm = np.zeros(hp.Alm.getsize(self.lmax), dtype=complex)
        for comp, s in self.scales(band).items():
            if comp in self.alms and comp != "dust" and s != 0.0:
                alm += s * self.alms[comp]
        if "dust" in self.alms:  # the band's own dust map (T_d, beta_d vary over the sky)
            amp, t_d, b_d = self._dust
            dust = amp * fg.dust_sed(p, band, t_d, b_d) * physics.mjysr_to_map_unit(band)
            alm += hp.map2alm(dust, lmax=self.lmax, iter=0)
        if "cib" in self.alms:  # the band's own, uncorrelated part of the CIB
            r = fg.cib_correlation(p, band)
            if r < 1.0:
                own = gaussian_alm(self._cib_cl, self.lmax, _rng(self.seed, 20 + _index(band)))
                scale = fg.cib_sed(p, band) * physics.mjysr_to_map_unit(band)
                alm += scale * np.sqrt(1.0 - r * r) * own
        hp.almxfl(alm, self.window(band) * self.calibration.get(band, 1.0), inplace=True)
        self._signal[band] = alm
        return alm

    def channel_map(self, band: str) -> np.ndarray:
        """The RING map of ``band`` in its unit (float64)."""
        if band == "y":
            return self.y_map()
        m = hp.alm2map(self.signal_alm(band), self.nside, lmax=self.lmax)
        return m + self.noise_map(band)

    # ---------------------------------------------------------------- the y-map
    def y_map(self) -> np.ndarray:
        """The y-map: ILC of the six channels (default) or the clean test map."""
        if self._ymap is None:
            self._ymap = self._clean_y() if self.params.ymap == "clean" else self._ilc_y()
        return self._ymap

    def _clean_y(self) -> np.ndarray:
        alm = self.alms.get("tsz", np.zeros(hp.Alm.getsize(self.lmax), complex)).copy()
        sigma = self.noise_sigma("y")
        if sigma > 0:  # noise at the map's resolution (white per pixel, then the 10' beam)
            cl = np.full(self.lmax + 1, sigma**2 * hp.nside2pixarea(self.nside))
            alm += gaussian_alm(cl, self.lmax, _rng(self.seed, 10 + _index("y")))
        hp.almxfl(alm, self.window("y"), inplace=True)
        return hp.alm2map(alm, self.nside, lmax=self.lmax)

    def _ilc_y(self) -> np.ndarray:
        """Harmonic ILC at 10'; sets :attr:`summary` (sigma_Y of y-map vs six channels)."""
        lmax = self.lmax
        b10 = self.window("y")
        a = np.array([channel(b).tsz_per_y for b in FREQ_BANDS])
        alms = []
        for band in FREQ_BANDS:
            alm = self.signal_alm(band).copy()
            noise = self.noise_map(band)
            if noise.any():
                alm += hp.map2alm(noise, lmax=lmax, iter=0)
            hp.almxfl(alm, b10 / self.window(band), inplace=True)
            alms.append(alm)
        total = ymap.bin_spectra(ymap.cross_spectra(alms, lmax), self.params.ilc_bin_width)
        w = ymap.ilc_weights(total, a)
        self.ilc_weights = w
        y_alm = ymap.combine(alms, w, lmax)
        # residuals (non-tSZ part) of the channels and of the y-map, for the summary
        for comp in ("tsz", "tsz_rel"):  # the channels' tSZ signal as they carry it
            if comp in self.alms:
                t10 = hp.almxfl(self.alms[comp], b10)
                for i, band in enumerate(FREQ_BANDS):
                    alms[i] -= self.scales(band)[comp] * self.calibration[band] * t10
        width = self.params.ilc_bin_width
        res = ymap.bin_spectra(ymap.cross_spectra(alms, lmax), width)
        n_y = ymap.bin_spectra(ymap.cross_spectra([ymap.combine(alms, w, lmax)], lmax), width)
        del alms
        ch_weight = ymap.inverse_noise_weight(a[None, :] * b10[:, None], res)
        y_weight = ymap.inverse_noise_weight(b10[:, None], n_y)
        self.summary = ymap.sensitivity_summary(ymap.SUMMARY_THETA500, ch_weight, y_weight, "ilc")
        log.info("y-map sigma_Y / six-channel sigma_Y: min %.3f over theta500 %s",
                 self.summary["ymap_sigma_ratio_min"], ymap.SUMMARY_THETA500)  # fmt: skip
        return hp.alm2map(y_alm, self.nside, lmax=lmax)

    def clean_summary(self) -> dict:
        """:attr:`summary` for the clean test map (its own white noise at 10')."""
        lmax = self.lmax
        b10 = self.window("y")
        s = self.noise_sigma("y")
        n_y = np.full(lmax + 1, max(s, 1e-30) ** 2 * hp.nside2pixarea(self.nside)) * b10**2
        y_weight = ymap.inverse_noise_weight(b10[:, None], n_y[:, None, None])
        return ymap.sensitivity_summary(
            ymap.SUMMARY_THETA500, self._channel_weight, y_weight, "clean"
        )

    def sky_summary(self) -> dict:
        """The content of ``results/sky/sky_summary.json``."""
        self.y_map()
        out = self.summary if self.params.ymap == "ilc" else self.clean_summary()
        theta_grid, sig = self.snr_table
        snr = np.asarray(self.truth["SNR"], float)
        return {
            **out,
            "nside": self.nside,
            "seed": self.seed,
            "n_clusters": len(self.truth),
            "n_snr_above_4p5": int((snr > 4.5).sum()),
            "n_snr_a10_above_4p5": int((np.asarray(self.truth["SNR_A10"], float) > 4.5).sum()),
            "profile_mismatch_snr_loss": truth_snr.loss_summary(self.a10_fraction, snr),
            "calibration": self.calibration,
            "truth_sigma_y_at_theta500": {
                f"{t:g}": float(np.exp(np.interp(np.log(t), np.log(theta_grid), np.log(sig))))
                for t in ymap.SUMMARY_THETA500
            },
        }

    # ---------------------------------------------------------------- matched-filter S/N
    def _component_spectra(self, bands) -> tuple[dict, np.ndarray]:
        """Model (L, n, n) spectra of the non-tSZ components, beamed: ``iso`` (CMB, kSZ, CIB,
        sources), ``dust`` and ``co`` at their full-sky power; and the mean white noise (n,)."""
        lmax, p = self.lmax, self.params
        nb = len(bands)
        win = np.array([self.window(b) for b in bands])  # (nb, L)
        parts = {"iso": np.zeros((lmax + 1, nb, nb))}
        for comp, alm in self.alms.items():
            if comp in ("tsz", "tsz_rel"):
                continue
            cov = parts.setdefault(comp if comp in ("dust", "co") else "iso",
                                   np.zeros((lmax + 1, nb, nb)))  # fmt: skip
            cl = hp.alm2cl(alm, lmax=lmax)
            sv = np.array([self.scales(b)[comp] for b in bands])[:, None] * win
            cov += cl[:, None, None] * np.einsum("il,jl->lij", sv, sv)
            if comp == "cib":  # the channels' own parts: diagonal
                r = np.array([fg.cib_correlation(p, b) for b in bands])
                own = np.array(
                    [fg.cib_sed(p, b) * physics.mjysr_to_map_unit(b) for b in bands]
                ) * np.sqrt(1 - r**2)
                idx = np.arange(nb)
                cov[:, idx, idx] += self._cib_cl[:, None] * (own[:, None] * win).T ** 2
        omega = hp.nside2pixarea(self.nside)
        level = max(p.noise_scale, 1e-6)  # the instrument noise, even if not simulated
        noise = np.array([(noise_per_pixel(b, self.nside) * level) ** 2 * omega for b in bands])
        return parts, noise

    def _compute_snr(self):
        """SNR_A10: A10 profile, global spectra (dust and CO at their |b| > 30 deg power, mean
        noise); SNR: own profile at the local dust, CO and noise (:mod:`truth_snr`)."""
        bands = list(FREQ_BANDS)
        parts, noise = self._component_spectra(bands)
        cov = parts["iso"] + sum(self.highlat_power.get(c, 1.0) * parts[c]
                                 for c in ("dust", "co") if c in parts)  # fmt: skip
        cov[:, np.arange(len(bands)), np.arange(len(bands))] += noise[None, :]
        win = np.array([self.window(b) for b in bands])
        tau = (np.array([channel(b).tsz_per_y for b in bands])[:, None] * win).T  # (L, nb)
        self._channel_weight = ymap.inverse_noise_weight(tau, cov)
        theta_grid = np.geomspace(0.3, 60.0, 40)  # arcmin
        sig = ymap.matched_filter_sigma(theta_grid, self._channel_weight)
        self.snr_table = (theta_grid, sig)
        t = self.truth
        theta, y5 = np.asarray(t["THETA500"], float), np.asarray(t["Y5R500"], float)
        sigma_y = np.exp(np.interp(np.log(theta), np.log(theta_grid), np.log(sig)))
        t["SNR_A10"] = y5 / sigma_y
        glon, glat = np.asarray(t["GLON"], float), np.asarray(t["GLAT"], float)
        mod = self.modulation[hp.ang2pix(self.nside, glon, glat, lonlat=True)]
        m_grid = truth_snr.modulation_grid(mod if mod.size else np.ones(1))
        factors = fg.local_power_factors(self.params, truth_snr.ABS_B_GRID)
        env = truth_snr.environment_weights(parts, noise, tau, factors, m_grid)
        tables = truth_snr.build_tables(self.shapes, env, m_grid)
        args = (np.asarray(t["SHAPE"]), theta, np.abs(glat), mod)
        t["SNR"] = tables.snr(y5, *args)
        self.a10_fraction = tables.a10_fraction(*args)
        self.snr_tables = tables
        log.info(
            "matched-filter sigma_Y5R500: %.2e arcmin^2 at theta500 = 3', %.2e at 10'",
            np.interp(3.0, theta_grid, sig),
            np.interp(10.0, theta_grid, sig),
        )


def write_sky_summary(path, sky: MockSky) -> dict:
    """Write :meth:`MockSky.sky_summary` as JSON (atomically); returns it."""
    summary = sky.sky_summary()
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


def _index(band: str) -> int:
    return list(CHANNELS).index(band)
