"""The mock Planck sky: component spectra, beams, noise, y-map, truth and known catalogues."""

import json

import healpy as hp
import numpy as np
import pytest
from scipy.optimize import curve_fit

from skydetect.io import catalogs
from skydetect.sky import physics, planck
from skydetect.sky.instrument import CHANNELS, noise_per_pixel

FREQ = planck.FREQ_BANDS


def _sky(nside, components, **kw):
    kw.setdefault("n_clusters", 200)
    kw.setdefault("m500_min", 3.0)
    kw.setdefault("calibration_error", {})  # components measured exactly, one at a time
    kw.setdefault("relativistic_tsz", False)
    params = planck.SimulationParams(components=tuple(components), **kw)
    return planck.MockSky(nside, (*FREQ, "y"), seed=11, params=params, progress=False)


def test_tsz_decrement_and_increment_with_tabulated_ratios():
    sky = _sky(64, ["tsz"], ymap="clean")
    y_mean = sky.channel_map("y").mean()  # the monopole is untouched by the beams
    assert y_mean > 0
    # total y of the map = sum of the clusters' Y5R500
    total = y_mean * 4 * np.pi * physics.ARCMIN_PER_RAD**2
    assert total == pytest.approx(float(np.sum(sky.truth["Y5R500"])), rel=1e-3)
    for band in FREQ:
        ratio = sky.channel_map(band).mean() / y_mean
        assert ratio == pytest.approx(CHANNELS[band].tsz_per_y, rel=1e-4)
    assert CHANNELS["100"].tsz_per_y < 0 and CHANNELS["143"].tsz_per_y < 0
    # at the brightest cluster the 100/143 maps dip, the 353-857 maps rise
    i = int(np.argmax(sky.truth["Y5R500"]))
    pix = hp.ang2pix(64, sky.truth["GLON"][i], sky.truth["GLAT"][i], lonlat=True)
    for band in ("100", "143"):
        assert sky.channel_map(band)[pix] < 0
    for band in ("353", "545", "857"):
        assert sky.channel_map(band)[pix] > 0


def test_dust_follows_the_modified_black_body():
    sky = _sky(64, ["dust"], n_clusters=5, dust_temperature_sigma=0.0, dust_beta_sigma=0.0)
    to_mjysr = {b: 1.0 / physics.mjysr_to_map_unit(b) for b in FREQ}
    means = {b: sky.channel_map(b).mean() * to_mjysr[b] for b in FREQ}
    p = sky.params
    for band in FREQ:
        nu = CHANNELS[band].freq_ghz
        expected = physics.modified_blackbody(nu, 353.0, p.dust_temperature, p.dust_beta)
        assert means[band] / means["353"] == pytest.approx(expected, rel=1e-4)
    assert means["857"] > means["545"] > means["353"] > means["100"] > 0
    # the dust rises strongly towards the plane
    m = sky.channel_map("545")
    b = np.abs(hp.pix2ang(64, np.arange(m.size), lonlat=True)[1])
    assert np.median(m[b < 5]) > 10 * np.median(m[b > 60])


def test_point_source_has_the_beam_fwhm_and_its_flux():
    nside, fwhm = 256, 60.0
    sky = _sky(
        nside,
        ["ir_sources"],
        n_clusters=5,
        n_ir_sources=1,
        n_radio_sources=0,
        sources_on_clusters_fraction=0.0,
        beam_fwhm_arcmin={"545": fwhm},
    )
    m = sky.channel_map("545")
    src = sky.sources[0]
    # flux conservation: integral of the map = source flux (mJy -> MJy)
    assert m.sum() * hp.nside2pixarea(nside) == pytest.approx(src["FLUX_545"] * 1e-9, rel=1e-3)
    vec = hp.ang2vec(src["GLON"], src["GLAT"], lonlat=True)
    pix = hp.query_disc(nside, vec, np.radians(2 * fwhm / 60))
    r = np.degrees(np.arccos(np.clip(np.dot(np.array(hp.pix2vec(nside, pix)).T, vec), -1, 1))) * 60

    def gauss(r, a, s):
        return a * np.exp(-0.5 * (r / s) ** 2)

    (a, s), _ = curve_fit(gauss, r, m[pix], p0=[m[pix].max(), fwhm / 2.355])
    assert 2.3548 * abs(s) == pytest.approx(fwhm, rel=0.05)


def test_dust_sed_varies_over_the_sky():
    p = {"n_clusters": 5, "dust_fluctuation": 0.0}
    sky = _sky(64, ["dust"], **p)
    ratio = sky.channel_map("857") / sky.channel_map("353")
    # one template times a constant would give a constant ratio; T_d, beta_d vary
    spread = np.std(np.log(ratio)) / abs(np.mean(np.log(ratio)))
    assert spread > 0.01
    t_d, b_d = sky._dust[1], sky._dust[2]
    assert np.std(t_d) == pytest.approx(1.4, rel=0.2) and np.mean(t_d) == pytest.approx(19.6, abs=1)
    assert np.std(b_d) == pytest.approx(0.1, rel=0.2)
    flat = _sky(64, ["dust"], dust_temperature_sigma=0.0, dust_beta_sigma=0.0, **p)
    r = flat.channel_map("857") / flat.channel_map("353")
    assert np.std(np.log(r)) < 0.2 * np.std(np.log(ratio))


def test_cib_decorrelates_between_channels():
    sky = _sky(128, ["cib"], n_clusters=5, beam_fwhm_arcmin={b: 60.0 for b in FREQ})
    m = {b: sky.channel_map(b) for b in FREQ}
    r = planck.SimulationParams().cib_correlation  # the schema default
    for a, b in (("545", "857"), ("353", "545"), ("217", "857"), ("100", "143")):
        assert np.corrcoef(m[a], m[b])[0, 1] == pytest.approx(r[a] * r[b], abs=0.03)
    assert np.corrcoef(m["545"], m["857"])[0, 1] > np.corrcoef(m["217"], m["545"])[0, 1]


def test_co_lines_only_in_the_100_217_353_bands():
    sky = _sky(64, ["co"], n_clusters=5)
    m = {b: sky.channel_map(b) for b in FREQ}
    for band in ("143", "545", "857"):
        assert np.abs(m[band]).max() == 0.0
    # K_CMB per K km/s: 15, 45, 175 uK (ratios survive the beams in the mean)
    assert m["353"].mean() / m["100"].mean() == pytest.approx(175 / 15, rel=1e-3)
    b = np.abs(hp.pix2ang(64, np.arange(m["100"].size), lonlat=True)[1])
    w_co = m["100"] / 15e-6
    assert np.median(w_co[b < 2]) > 5 and np.median(w_co[b > 40]) < 1.0


def test_ksz_option_has_the_cmb_spectrum_and_is_weaker_than_the_tsz():
    beams = {b: 30.0 for b in FREQ}
    ksz = _sky(64, ["ksz"], beam_fwhm_arcmin=beams)
    tsz = _sky(64, ["tsz"], beam_fwhm_arcmin=beams)
    assert "ksz" in planck.SimulationParams().components  # on by default
    k100, k143 = ksz.channel_map("100"), ksz.channel_map("143")
    np.testing.assert_allclose(k100, k143, atol=1e-3 * np.abs(k143).max())
    k545 = ksz.channel_map("545") / CHANNELS["545"].kcmb_to_mjysr  # MJy/sr -> K_CMB
    np.testing.assert_allclose(k545, k143, atol=1e-3 * np.abs(k143).max())
    assert 0 < k143.std() < 0.3 * tsz.channel_map("143").std()


def test_noise_follows_the_hit_counts():
    sky = _sky(64, ["noise"], n_clusters=5)
    n = sky.noise_map("143")
    theta, phi = hp.pix2ang(64, np.arange(n.size))
    ecl_lat = 90 - np.degrees(hp.Rotator(coord=["G", "E"])(theta, phi)[0])
    pole, plane = np.abs(ecl_lat) > 85, np.abs(ecl_lat) < 10
    # sigma ~ hits^-1/2, hits 10x deeper at the ecliptic poles
    assert n[plane].std() / n[pole].std() == pytest.approx(np.sqrt(10), rel=0.15)
    assert np.sqrt(np.mean(n**2)) == pytest.approx(noise_per_pixel("143", 64), rel=0.03)


def test_noise_per_pixel_matches_the_instrument():
    nside = 128
    sky = _sky(nside, ["noise"], n_clusters=5, noise_hits_ratio=1.0)
    for band in FREQ:
        sigma = noise_per_pixel(band, nside)
        assert sky.channel_map(band).std() == pytest.approx(sigma, rel=0.02)
    # sigma_pix ~ 1 / pixel size, and the 1.718' (nside 2048) values of sky-model.md
    assert noise_per_pixel("143", 2048) == pytest.approx(19e-6, rel=0.01)
    assert noise_per_pixel("143", 1024) == pytest.approx(noise_per_pixel("143", 2048) / 2)


def test_components_are_seeded():
    a = _sky(32, ["cmb", "noise"], n_clusters=5).channel_map("143")
    b = _sky(32, ["cmb", "noise"], n_clusters=5).channel_map("143")
    np.testing.assert_array_equal(a, b)
    cmb = _sky(32, ["cmb"], n_clusters=5)
    # CMB identical in K_CMB at every channel (up to the beams): same sign pattern at 100/143
    m100, m143 = cmb.channel_map("100"), cmb.channel_map("143")
    assert np.corrcoef(m100, m143)[0, 1] > 0.99
    assert 50e-6 < m143.std() < 150e-6  # CMB rms ~ 100 uK at degree resolution


@pytest.fixture(scope="module")
def full_sky():
    params = planck.SimulationParams(m500_min=2.5, n_ir_sources=500, n_radio_sources=300)
    sky = planck.MockSky(128, (*FREQ, "y"), seed=5, params=params, progress=False)
    known = planck.known_catalogues(sky)
    return sky, known


def test_ymap_is_no_better_than_the_six_channels(full_sky, tmp_path):
    """The ILC y-map's matched-filter sigma_Y is at least ~ that of the six channels; the old
    clean y-map (true y + own noise) beats them and fails the same check."""
    sky, _ = full_sky
    planck.write_sky_summary(tmp_path / "sky_summary.json", sky)
    summary = json.loads((tmp_path / "sky_summary.json").read_text())
    assert sorted(summary["theta500_arcmin"], key=float) == ["1", "2", "3", "5", "10"]
    assert summary["ymap_sigma_ratio_min"] >= 0.95
    ratios = [v["ratio"] for v in summary["theta500_arcmin"].values()]
    assert summary["ymap_sigma_ratio_min"] == pytest.approx(min(ratios))
    clean = planck.MockSky(128, (*FREQ, "y"), seed=5, progress=False,
                           params=planck.SimulationParams(m500_min=2.5, n_ir_sources=500,
                                                          n_radio_sources=300, ymap="clean"))  # fmt: skip
    assert clean.sky_summary()["ymap_sigma_ratio_min"] < 0.95


def test_ilc_ymap_keeps_the_tsz_signal_and_removes_the_cmb():
    sky = _sky(64, ["tsz", "cmb", "noise"], beam_fwhm_arcmin={b: 60.0 for b in (*FREQ, "y")})
    y = sky.channel_map("y")
    clean = _sky(64, ["tsz"], ymap="clean", beam_fwhm_arcmin={"y": 60.0}).channel_map("y")
    assert np.sum(sky.ilc_weights[5] * np.array([CHANNELS[b].tsz_per_y for b in FREQ])) == (
        pytest.approx(1.0)
    )
    # a^T w = 1 passes the tSZ part; the empirical covariance (signal included, few modes at
    # nside 64) anticorrelates the residual with it: the known ILC bias, ~10 % here
    c = np.cov(y, clean)
    assert c[0, 1] / c[1, 1] == pytest.approx(1.0, abs=0.15)
    cmb = _sky(64, ["cmb"], beam_fwhm_arcmin={b: 60.0 for b in FREQ}).channel_map("143")
    assert abs(np.corrcoef(y - clean, cmb)[0, 1]) < 0.2  # CMB (K_CMB, same in all) nulled


def test_truth_counts_and_snr_distribution(full_sky):
    sky, _ = full_sky
    t = planck.truth_table(sky)
    assert t.colnames[:11] == [
        "ID", "GLON", "GLAT", "RA", "DEC", "M500", "Z", "THETA500", "Y5R500", "SNR", "KNOWN",
    ]  # fmt: skip
    assert t.colnames[11:] == ["SNR_A10", "C500", "GAMMA", "ALPHA", "BETA", "P0", "AXIS_RATIO",
                               "POS_ANGLE", "T_KEV", "V_LOS"]  # fmt: skip
    _, _, counts = physics.cluster_counts_grid(2.5)
    assert abs(len(t) - counts.sum()) < 5 * np.sqrt(counts.sum())  # Poisson draw
    snr = np.asarray(t["SNR"])
    assert np.all(snr > 0) and np.median(snr) < 1.0  # most clusters lie below detection
    n_det = int((snr > 4.5).sum())
    assert 50 < n_det < 0.05 * len(t)
    # S/N rises with Y at fixed size: the top-1 % in Y are far more often detectable
    y = np.asarray(t["Y5R500"])
    assert np.median(snr[y > np.quantile(y, 0.99)]) > 4 * np.median(snr)
    assert str(t["THETA500"].unit) == "arcmin" and str(t["Y5R500"].unit) == "arcmin2"
    assert t["M500"].unit.to("solMass") == pytest.approx(1e14)


def test_known_catalogues_are_realistic_subsets(full_sky, tmp_path):
    sky, known = full_sky
    t = sky.truth
    psz2_path = tmp_path / "psz2_union.fits"
    catalogs.write_psz2(psz2_path, known["psz2"])
    psz2 = catalogs.read_psz2(psz2_path)
    assert psz2.colnames == [c[0] for c in catalogs.PSZ2_COLUMNS]
    assert len(psz2) > 20
    # high-S/N part outside the plane; true S/N mostly above ~3.5
    assert np.all(np.abs(psz2["GLAT"]) >= 10.0) and np.all(psz2["SNR"] >= 4.5)
    with_z = psz2["REDSHIFT"] >= 0
    assert 0.5 < with_z.mean() < 0.8 and np.all(psz2["REDSHIFT"][~with_z] == -1)
    assert np.all(psz2["MSZ"][~with_z] == 0) and np.all(psz2["MSZ"][with_z] > 0)
    catalogs.write_mcxc(tmp_path / "mcxc.fits", known["mcxc"])
    mcxc = catalogs.read_mcxc(tmp_path / "mcxc.fits")
    assert len(mcxc) == min(sky.params.mcxc_count, len(t))
    # X-ray selection reaches lower masses at low redshift
    assert np.median(mcxc["z"]) < np.median(np.asarray(t["Z"]))
    catalogs.write_redmapper(tmp_path / "rm.fits", known["redmapper"])
    rm = catalogs.read_redmapper(tmp_path / "rm.fits")
    assert np.all(rm["LAMBDA"] >= 20) and (rm["LAMBDA"] > 30).sum() > (rm["LAMBDA"] > 50).sum() > 0
    assert np.all(rm["DEC"] > -5.0)
    assert t["KNOWN"].sum() >= len(psz2)


def test_known_positions_are_scattered_by_their_errors(full_sky):
    from astropy.coordinates import SkyCoord

    sky, known = full_sky
    psz2 = known["psz2"]
    truth = sky.truth
    from skydetect.sky.mock_catalogs import _names_from_glon_glat

    ids = {n: i for i, n in enumerate(_names_from_glon_glat(
        "PSZ2 ", np.asarray(truth["GLON"]), np.asarray(truth["GLAT"])))}  # fmt: skip
    idx = np.array([ids[n] for n in psz2["NAME"]])
    sep = (
        SkyCoord(psz2["GLON"], psz2["GLAT"], unit="deg", frame="galactic")
        .separation(SkyCoord(truth["GLON"][idx], truth["GLAT"][idx], unit="deg", frame="galactic"))
        .arcmin
    )
    assert np.all(sep > 0)
    rms = np.sqrt(np.mean(sep**2))
    assert rms == pytest.approx(np.sqrt(np.mean(psz2["POS_ERR"] ** 2)), rel=0.25)


def test_sources_catalogue(full_sky, tmp_path):
    sky, _ = full_sky
    catalogs.write_sources(tmp_path / "sources.ecsv", sky.sources)
    s = catalogs.read_sources(tmp_path / "sources.ecsv")
    assert (s["TYPE"] == "ir").sum() == 500 and (s["TYPE"] == "radio").sum() == 300
    ir, radio = s[s["TYPE"] == "ir"], s[s["TYPE"] == "radio"]
    assert np.all(ir["FLUX_857"] > ir["FLUX_100"])  # dusty: rising with frequency
    assert np.all(radio["FLUX_100"] > radio["FLUX_857"])  # synchrotron: falling
    assert s["ON_CLUSTER"].sum() > 0


def test_params_reject_unknown_keys():
    with pytest.raises(ValueError, match="unknown planck.simulate key"):
        planck.SimulationParams.from_config({"n_galaxies": 3})
    with pytest.raises(ValueError, match="components"):
        planck.SimulationParams.from_config({"components": ["cmb", "synchrotron"]})


def test_positions_from_a_real_catalogue():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs" / "mcxc.fits"
    if not path.exists():
        pytest.skip("real catalogues not present in ../shared/data/catalogs/")
    t = planck.draw_clusters(planck.SimulationParams(positions_from=str(path)), seed=1)
    real = catalogs.read_mcxc(path)
    assert len(t) == len(real)
    np.testing.assert_allclose(t["GLON"], real["GLON"])
    np.testing.assert_allclose(t["M500"], real["M500"])
    psz2_path = path.parent / "HFI_PCCS_SZ-union_R2.08.fits"
    t = planck.draw_clusters(planck.SimulationParams(positions_from=str(psz2_path)), seed=1)
    real = catalogs.read_psz2(psz2_path)
    assert len(t) == 1653
    np.testing.assert_allclose(t["Y5R500"], real["Y5R500"] * 1e-3, rtol=1e-6)  # published Y
    has_z = real["REDSHIFT"] > 0
    np.testing.assert_allclose(t["Z"][has_z], real["REDSHIFT"][has_z], rtol=1e-6)


def test_truth_file_round_trip(full_sky, tmp_path):
    from astropy.table import Table

    sky, _ = full_sky
    planck.write_truth(tmp_path / "truth_clusters.ecsv", sky)
    t = Table.read(tmp_path / "truth_clusters.ecsv")
    assert len(t) == len(sky.truth) and t["KNOWN"].dtype == bool
    np.testing.assert_allclose(t["M500"], sky.truth["M500"])
    assert t["M500"].unit.to("solMass") == pytest.approx(1e14)
    assert not list(tmp_path.glob(".*tmp*"))


def test_relativistic_tsz_shrinks_the_143_decrement_of_hot_clusters():
    rel = _sky(64, ["tsz"], ymap="clean", relativistic_tsz=True)
    cold = _sky(64, ["tsz"], ymap="clean")
    t = rel.truth
    theta_e = np.asarray(t["T_KEV"]) / physics.M_E_C2_KEV
    y = np.asarray(t["Y5R500"])
    expected = CHANNELS["143"].tsz_per_y + 2.7255 * physics.tsz_y1(143.0) * np.sum(
        theta_e * y
    ) / np.sum(y)
    ratio = rel.channel_map("143").mean() / cold.channel_map("y").mean()
    assert ratio == pytest.approx(expected, rel=1e-4)
    assert CHANNELS["143"].tsz_per_y < ratio < 0.95 * CHANNELS["143"].tsz_per_y < 0
    np.testing.assert_allclose(rel.channel_map("545"), cold.channel_map("545"))  # first order


def test_calibration_is_one_factor_per_map_with_the_configured_rms():
    from skydetect.sky import foregrounds

    params = planck.SimulationParams()
    draws = np.array([list(foregrounds.calibration_factors(params, s, FREQ).values())
                      for s in range(3000)])  # fmt: skip
    np.testing.assert_allclose(draws.mean(axis=0), 1.0, atol=4 * 0.05 / np.sqrt(3000))
    expected = [params.calibration_error[b] for b in FREQ]
    np.testing.assert_allclose(draws.std(axis=0), expected, rtol=0.05)
    err = {"545": 0.05}
    cal = _sky(32, ["cmb", "dust", "noise"], n_clusters=5, calibration_error=err)
    ref = _sky(32, ["cmb", "dust", "noise"], n_clusters=5)
    g = cal.calibration["545"]
    assert g != 1.0 and cal.calibration["143"] == 1.0
    np.testing.assert_allclose(cal.channel_map("545"), g * ref.channel_map("545"), rtol=1e-10)


def test_ksz_velocities_have_the_configured_rms_and_sign(full_sky):
    from skydetect.sky import foregrounds

    sky, _ = full_sky
    v = np.asarray(sky.truth["V_LOS"])
    assert np.std(v) == pytest.approx(300.0, rel=0.03) and abs(np.mean(v)) < 10.0
    w, v2 = foregrounds.ksz_weights(sky.truth[:2000], np.random.default_rng(1), 600.0)
    assert np.std(v2) == pytest.approx(600.0, rel=0.06)
    assert np.all(np.sign(w) == -np.sign(v2))  # receding (v > 0): a decrement


def test_truth_snr_is_local_and_own_profile(full_sky, tmp_path):
    sky, _ = full_sky
    t = sky.truth
    snr, a10 = np.asarray(t["SNR"]), np.asarray(t["SNR_A10"])
    assert np.all(snr > 0) and np.all(a10 > 0) and not np.allclose(snr, a10)
    assert np.all(sky.a10_fraction <= 1.0)
    # deeper noise (ecliptic poles) raises the S/N against the global figure
    mod = sky.modulation[hp.ang2pix(sky.nside, t["GLON"], t["GLAT"], lonlat=True)]
    high = np.abs(np.asarray(t["GLAT"])) > 40
    deep, shallow = high & (mod < 0.6), high & (mod > 1.1)
    assert np.median((snr / a10)[deep]) > 1.1 * np.median((snr / a10)[shallow])
    # the dusty plane lowers it
    assert np.median((snr / a10)[np.abs(np.asarray(t["GLAT"])) < 2]) < np.median((snr / a10)[high])
    summary = sky.sky_summary()
    loss = summary["profile_mismatch_snr_loss"]
    assert 0.0 <= loss["p16"] <= loss["median"] <= loss["p84"] < 0.5
    assert "ymap_sigma_ratio_min" in summary


def test_truth_snr_halves_with_double_noise():
    one = _sky(32, ["tsz", "noise"], n_clusters=50)
    two = _sky(32, ["tsz", "noise"], n_clusters=50, noise_scale=2.0)
    np.testing.assert_allclose(two.truth["SNR"], 0.5 * np.asarray(one.truth["SNR"]), rtol=1e-6)


def test_names_from_coinciding_rounded_positions_stay_unique():
    from skydetect.sky.mock_catalogs import unique_names

    names = unique_names(["RMJ1334.3+3129.3", "RMJ0001.0+0000.0", "RMJ1334.3+3129.3"] + ["X"] * 28)
    assert list(names[:3]) == ["RMJ1334.3+3129.3", "RMJ0001.0+0000.0", "RMJ1334.3+3129.3A"]
    assert len(set(names)) == len(names) and names[-1] == "XA1"
