"""Physics of the mock sky against independent formulae and published numbers."""

import astropy.units as u
import numpy as np
import pytest
from astropy.cosmology import Planck18
from astropy.modeling.models import BlackBody
from scipy import integrate

from skydetect.sky import physics
from skydetect.sky.instrument import CHANNELS, T_CMB


def test_theta500_against_direct_astropy():
    m500, z = 6.0, 0.2
    rho_c = Planck18.critical_density(z).to(u.Msun / u.Mpc**3)
    r500 = ((3 * m500 * 1e14 * u.Msun) / (4 * np.pi * 500 * rho_c)) ** (1 / 3)
    theta = (r500 / Planck18.angular_diameter_distance(z)).decompose() * u.rad
    assert physics.theta500_arcmin(m500, z) == pytest.approx(theta.to_value(u.arcmin), rel=1e-6)
    # theta500 ~ M^(1/3) at fixed z
    assert physics.theta500_arcmin(8 * m500, z) / physics.theta500_arcmin(m500, z) == pytest.approx(
        2.0
    )


def test_y_m_relation_pivot_and_slope():
    rel = physics.YMRelation()
    z = 0.3
    m_pivot = 6.0 / (1 - rel.bias)  # (1 - b) M = 6e14 Msun
    h = Planck18.h
    d_a = Planck18.angular_diameter_distance(z).to_value(u.Mpc)
    y500_mpc2 = 1e-4 * 10**-0.19 * (h / 0.7) ** (-2 + 1.79) * Planck18.efunc(z) ** 0.66
    y500_arcmin2 = y500_mpc2 / d_a**2 * (180 * 60 / np.pi) ** 2
    assert physics.y5r500_arcmin2(m_pivot, z) == pytest.approx(1.796 * y500_arcmin2, rel=1e-6)
    ratio = physics.y5r500_arcmin2(2 * m_pivot, z) / physics.y5r500_arcmin2(m_pivot, z)
    assert ratio == pytest.approx(2**1.79)
    # scatter: sigma(log10 Y) = 0.075
    rng = np.random.default_rng(0)
    y = physics.y5r500_arcmin2(np.full(20000, m_pivot), z, rng=rng)
    assert np.std(np.log10(y)) == pytest.approx(0.075, rel=0.03)


def test_psz2_like_cluster_has_psz2_like_y():
    # PSZ2 median MSZ ~ 4.6e14 Msun (hydrostatic, = (1-b) M500) at z ~ 0.2: Y5R500 ~ 2e-3 arcmin^2
    y = physics.y5r500_arcmin2(4.6 / 0.8, 0.2)
    assert 1e-3 < y < 4e-3


def test_arnaud_profile_ratio_y5r500_over_y500():
    p = physics.ARNAUD10

    def ysph(x_out):
        return integrate.quad(lambda x: p.pressure(x) * x * x, 0, x_out, limit=200)[0]

    assert ysph(5.0) / ysph(1.0) == pytest.approx(1.796, rel=0.01)


def test_projected_profile_normalisation_and_transform():
    x, f = physics.projected_profile()
    assert integrate.simpson(2 * np.pi * x * f, x=x) == pytest.approx(1.0, rel=1e-6)
    assert np.all(np.diff(f) <= 1e-12)  # monotonically falling
    assert f[-1] == pytest.approx(0.0, abs=1e-3 * f[0])
    k = np.array([0.0, 0.5, 2.0, 8.0])
    uk = physics.profile_transform(k)
    assert uk[0] == pytest.approx(1.0, rel=1e-6)
    assert np.all(np.diff(uk) < 0)


def test_tsz_spectral_function_against_band_factors():
    # f(x) x T_CMB is the monochromatic K_CMB/y factor; band-integrated ones differ by < 15 %
    for band in ("100", "143", "353"):
        mono = physics.tsz_f(CHANNELS[band].freq_ghz) * T_CMB
        assert mono == pytest.approx(CHANNELS[band].tsz_per_y, rel=0.15)
    assert abs(physics.tsz_f(217.5)) < 0.02  # null near 217 GHz
    assert physics.tsz_f(100.0) < 0 < physics.tsz_f(353.0)


def test_planck_function_and_modified_black_body():
    bb = BlackBody(temperature=19.6 * u.K)
    for nu in (353.0, 857.0):
        ref = bb(nu * u.GHz).to_value(u.MJy / u.sr)
        assert physics.planck_bnu(nu, 19.6) == pytest.approx(ref, rel=1e-6)
    r = physics.modified_blackbody(545.0, 353.0, 19.6, 1.53)
    expected = (545 / 353) ** 1.53 * bb(545 * u.GHz) / bb(353 * u.GHz)
    assert r == pytest.approx(float(expected), rel=1e-6)


def test_sigma8_and_growth():
    rho_m = (Planck18.Om0 * Planck18.critical_density0).to_value(u.Msun / u.Mpc**3) / Planck18.h**2
    m8 = 4 / 3 * np.pi * 8.0**3 * rho_m  # Msun/h in an 8 Mpc/h sphere
    sigma8, _ = physics.sigma_r([m8])
    assert sigma8[0] == pytest.approx(0.811, rel=0.01)  # Planck 2018
    d = physics.growth_factor([0.0, 1.0])
    assert d[0] == pytest.approx(1.0) and d[1] == pytest.approx(0.61, abs=0.02)


def test_mass_function_counts():
    _, _, c1 = physics.cluster_counts_grid(2.0)
    _, _, c5 = physics.cluster_counts_grid(5.0)
    # full-sky counts above 5e14 Msun: a few thousand (Planck detects ~1000 of them)
    assert 1000 < c5.sum() < 10000
    assert c1.sum() > 5 * c5.sum()
    rng = np.random.default_rng(3)
    m, z = physics.sample_clusters(rng, 2.0, n=5000)
    assert m.min() >= 2.0 and 0.01 <= z.min() and z.max() <= 1.5
    # the mass function is steep: median mass within ~1.5x of the cut
    assert np.median(m) < 3.5


def test_cmb_spectrum_first_peak():
    cl = physics.cmb_cl(3000)
    ell = np.arange(cl.size)
    dl = ell * (ell + 1) * cl / (2 * np.pi) * 1e12  # uK^2
    assert 200 <= np.argmax(dl) <= 230
    assert dl.max() == pytest.approx(5750, rel=0.05)
    with pytest.raises(ValueError, match="tabulated"):
        physics.cmb_cl(20000)


def test_relativistic_tsz_term_limits_and_hot_cluster_decrement():
    from skydetect.sky.instrument import T_CMB as tcmb

    # Rayleigh-Jeans limit of Itoh et al. 1998: dT/T = -2 y (1 - 17/10 theta_e)
    assert physics.tsz_y1(1.0) == pytest.approx(3.4, rel=1e-3)
    theta_e = 10.0 / physics.M_E_C2_KEV  # a 10 keV cluster
    y0, y1 = physics.tsz_f(143.0), physics.tsz_y1(143.0)
    shrink = (y0 + theta_e * y1) / y0
    assert 0.9 < shrink < 0.97  # the 143 GHz decrement shrinks by a few per cent
    y0, y1 = physics.tsz_f(353.0), physics.tsz_y1(353.0)
    assert 0.75 < (y0 + theta_e * y1) / y0 < 0.95  # the 353 GHz increment by 5-25 %
    assert physics.tsz_y1(545.0) == 0.0  # first order does not converge there: left out
    assert tcmb * physics.tsz_f(143.0) < 0


def test_arnaud05_temperature():
    # E(z) M_HSE = 3.84e14 h70^-1 Msun at 5 keV; T ~ M^(1/1.71)
    h70 = Planck18.H0.value / 70.0
    m500 = 3.84 / h70 / 0.8
    assert physics.temperature_kev(m500, 0.0) == pytest.approx(5.0, rel=1e-3)
    assert physics.temperature_kev(2 * m500, 0.0) / 5.0 == pytest.approx(2 ** (1 / 1.71), rel=1e-3)
    assert physics.temperature_kev(m500, 0.5) > 5.0  # hotter at fixed mass at higher z


def test_fast_projection_matches_the_quad_reference():
    from skydetect.sky import cluster_shapes

    a = physics.ARNAUD10
    x, f = physics.projected_profile()
    g = cluster_shapes.project_gnfw(a.c500, a.gamma, a.alpha, a.beta)[0]
    xs = cluster_shapes._X
    sel = (xs > 0.005) & (xs < 4.5)
    np.testing.assert_allclose(g[sel], np.interp(xs[sel], x, f), rtol=5e-3)
    lib = cluster_shapes.make_library(a.c500, a.gamma, a.alpha, a.beta, 1.0)
    k = np.array([0.0, 0.5, 2.0, 8.0])
    np.testing.assert_allclose(
        lib.transform(k)[0], physics.profile_transform(k), rtol=2e-3, atol=1e-4
    )


def test_truth_snr_own_profile_beats_the_a10_template_and_scales_with_noise():
    import healpy as hp

    from skydetect.sky import cluster_shapes, truth_snr, ymap

    a = physics.ARNAUD10
    lib = cluster_shapes.make_library(
        [a.c500, 3.0], [a.gamma, 0.8], [a.alpha, 1.3], [a.beta, 4.0], [1.0, 0.6]
    )
    lmax = 3 * 256 - 1
    tau = hp.gauss_beam(np.radians(5.0 / 60), lmax=lmax)[:, None]  # one 5' channel
    noise = np.array([1e-10])
    m_grid = np.array([0.5, 1.0, 2.0])
    env = truth_snr.environment_weights({"iso": np.zeros((lmax + 1, 1, 1))}, noise, tau, {}, m_grid)
    tables = truth_snr.build_tables(lib, env, m_grid)
    theta = np.array([2.0, 8.0, 30.0])
    shape = np.array([0, 0, 1])
    y = np.full(3, 1e-3)
    snr1 = tables.snr(y, shape, theta, np.full(3, 40.0), np.ones(3))
    snr2 = tables.snr(y, shape, theta, np.full(3, 40.0), np.full(3, 2.0))
    np.testing.assert_allclose(snr2, 0.5 * snr1, rtol=1e-6)  # double the noise, half the S/N
    # the A10 shape: the harmonic sigma_Y of skydetect.sky.ymap (the SNR_A10 formula)
    sigma = ymap.matched_filter_sigma(theta[:2], env[0, 1])
    np.testing.assert_allclose(snr1[:2], y[:2] / sigma, rtol=0.02)
    frac = tables.a10_fraction(shape, theta, np.full(3, 40.0), np.ones(3))
    assert frac[:2] == pytest.approx([1.0, 1.0], abs=1e-3)
    assert frac[2] < 0.985 and np.all(frac <= 1.0)  # a resolved non-A10 cluster: S/N lost


def _painted(c500, q, pa, nside=512):
    import healpy as hp
    from astropy.table import Table

    from skydetect.sky import cluster_shapes

    a = physics.ARNAUD10
    lib = cluster_shapes.make_library(c500, a.gamma, a.alpha, a.beta, q)
    t = Table({"GLON": [30.0], "GLAT": [40.0], "THETA500": [40.0], "Y5R500": [0.1],
               "SHAPE": [0], "AXIS_RATIO": [q], "POS_ANGLE": [pa]})  # fmt: skip
    y = cluster_shapes.paint_clusters(nside, t, lib, progress=False)["y"]
    pix = np.flatnonzero(y)
    dx, dy = cluster_shapes._tangent_offsets(nside, pix, 30.0, 40.0)
    area = hp.nside2pixarea(nside) * physics.ARCMIN_PER_RAD**2
    return y[pix] * area, dx, dy


def test_painted_clusters_follow_their_parameters():
    w, dx, dy = _painted(physics.ARNAUD10.c500, 1.0, 0.0)
    assert w.sum() == pytest.approx(0.1, rel=1e-6)  # Y5R500 kept
    inner_a10 = w[np.hypot(dx, dy) < 0.3 * 40.0].sum() / w.sum()
    w3, dx3, dy3 = _painted(3.0, 1.0, 0.0)
    inner_c3 = w3[np.hypot(dx3, dy3) < 0.3 * 40.0].sum() / w3.sum()
    assert inner_c3 > 1.2 * inner_a10  # larger c500: more concentrated
    # ellipticity: the second moments' axis ratio is q, major axis at the position angle
    for pa in (0.0, 60.0):
        w, dx, dy = _painted(physics.ARNAUD10.c500, 0.6, pa)
        cov = np.cov(np.vstack([dx, dy]), aweights=w)
        evals, evecs = np.linalg.eigh(cov)
        assert np.sqrt(evals[0] / evals[1]) == pytest.approx(0.6, abs=0.03)
        major = evecs[:, 1]
        angle = np.degrees(np.arctan2(major[0], major[1])) % 180.0  # east of north
        assert min(abs(angle - pa), 180 - abs(angle - pa)) < 3.0
