"""Forced MMF photometry: the continuous Y-theta fit on injected A10 clusters, its errors and
the position error; forced photometry on a HEALPix tile."""

import healpy as hp
import numpy as np
import pytest
from scipy import ndimage, special

from skydetect.clusters import mmf
from skydetect.clusters.mmf import photometry
from skydetect.geometry import tiles
from skydetect.sky.instrument import channel

BANDS = ["100", "143", "217", "353", "545", "857"]
FWHM = np.array([channel(b).fwhm_arcmin for b in BANDS])
TSZ = np.array([channel(b).tsz_per_y for b in BANDS])
SIGMA = np.array([channel(b).noise_per_1p718_arcmin for b in BANDS])
PIX, SIZE = 1.7, 128
CFG = mmf.MMFConfig(bands=BANDS, pixel_window=False)


def inject(y5r500, theta500, x0, y0, size=SIZE, over=3):
    """A10 cluster (B, S, S) drawn in real space (fine grid, Gaussian beams, pixel average),
    independently of the filter's Fourier template."""
    n = size * over
    c = (np.arange(n) + 0.5) / over - 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    t = mmf.projected_profile(np.hypot(yy - y0, xx - x0) * PIX / theta500) / theta500**2
    out = []
    for f in FWHM:
        s = ndimage.gaussian_filter(t, f / np.sqrt(8 * np.log(2)) / PIX * over, mode="constant")
        out.append(s.reshape(size, over, size, over).mean(axis=(1, 3)))
    return y5r500 * TSZ[:, None, None] * np.array(out)


def injected_set(n, theta500, y5r500, seed):
    """``n`` noise patches (white + a CMB-like red component) with one cluster at the centre
    pixel (S/2, S/2), measured by :func:`photometry.measure_patches`."""
    rng = np.random.default_rng(seed)
    q, _, _ = mmf.fourier_grid(SIZE, PIX)
    kcmb = np.array([1.0, 1.0, 1.0, 1.0, 58.04, 2.27])
    cluster = inject(y5r500, theta500, SIZE / 2, SIZE / 2)
    maps = np.empty((n, len(BANDS), SIZE, SIZE))
    for i in range(n):
        amp = 2e-5 / np.maximum(q, 1.0 / (SIZE * PIX)) ** 1.2
        cmb = np.fft.irfft2(amp * np.fft.rfft2(rng.normal(size=(SIZE, SIZE))), s=(SIZE, SIZE))
        maps[i] = cluster + rng.normal(size=(6, SIZE, SIZE)) * SIGMA[:, None, None]
        maps[i] += kcmb[:, None, None] * cmb
    win = np.broadcast_to(mmf.apodisation_window(SIZE, CFG.apodisation_px), (n, SIZE, SIZE))
    centre = np.full(n, SIZE // 2)
    return photometry.measure_patches(maps, win, centre, centre, CFG)


@pytest.fixture(scope="module")
def injected():
    theta, y5 = 4.0, 1.2e-3  # between grid points; S/N ~ 7 on these patches
    outs = injected_set(120, theta, y5, seed=3)
    return theta, y5, outs, photometry.fit_y_theta(outs)


def test_recovered_y_is_unbiased_and_errors_cover_68_percent(injected):
    theta, y5, outs, fit = injected
    assert np.all(np.isfinite(fit["Y5R500"])) and 4 < np.median(fit["SNR"]) < 12
    pull = (fit["Y5R500"] - y5) / fit["Y5R500_ERR"]
    # unbiased on average: the mean pull is 0 within 3 standard errors
    assert abs(pull.mean()) < 3 / np.sqrt(len(pull)), pull.mean()
    # the 1-sigma errors cover ~68 % (binomial 1-sigma 4 % for 120 draws)
    cover = np.mean(np.abs(pull) < 1)
    assert 0.56 < cover < 0.80, cover


def test_theta500_within_its_error_and_inside_the_grid(injected):
    theta, _, _, fit = injected
    assert np.all((fit["THETA500"] >= 1.0) & (fit["THETA500"] <= 15.0))
    assert np.all(fit["THETA500_ERR"] > 0)
    assert abs(np.median(fit["THETA500"]) - theta) < np.median(fit["THETA500_ERR"])


def test_position_error_matches_the_gaussian_beam_limit():
    """One band, a point-like cluster, white noise: the filter's output is the beam's
    autocorrelation, so the position error per coordinate is sqrt(2) s / SNR."""
    th = np.array([0.05, 0.06])
    s = 10.0 / np.sqrt(8 * np.log(2))
    res = mmf.filter_patch(
        np.zeros((1, 256, 256)), PIX, [10.0], [1.0], th,
        noise_ps=mmf.white_noise_spectra([1.0], 256),
    )  # fmt: skip
    outs = photometry.FilterOutputs(th, 8 * res.sigma[None], res.sigma[None], res.q2[None])
    fit = photometry.fit_y_theta(outs)
    assert fit["POS_ERR"][0] == pytest.approx(np.sqrt(2) * s / fit["SNR"][0], rel=0.03)


def test_position_error_predicts_the_peak_scatter(injected):
    """Where the S/N map peaks near a bright injected cluster scatters by POS_ERR."""
    rng = np.random.default_rng(8)
    theta, y5 = 4.0, 1.5e-3
    cluster = inject(y5, theta, SIZE / 2, SIZE / 2)
    win = mmf.apodisation_window(SIZE, CFG.apodisation_px)
    offsets, errs = [], []
    for _ in range(40):
        maps = cluster + rng.normal(size=(6, SIZE, SIZE)) * SIGMA[:, None, None]
        r = mmf.filter_patch(maps, PIX, FWHM, TSZ, [theta], window=win)
        pk = max(mmf.find_peaks(r, 4.0), key=lambda p: p.snr)
        offsets += [(pk.x - SIZE / 2) * PIX, (pk.y - SIZE / 2) * PIX]
        outs = photometry.FilterOutputs(np.array([theta]), r.y[:, SIZE // 2, SIZE // 2][None],
                                        r.sigma[None], r.q2[None])  # fmt: skip
        errs.append(photometry.fit_y_theta(outs)["POS_ERR"][0])
    assert np.std(offsets) == pytest.approx(np.mean(errs), rel=0.3)


def test_unmeasured_rows_are_nan():
    th = np.array([1.0, 2.0])
    nan = np.full((1, 2), np.nan)
    fit = photometry.fit_y_theta(photometry.FilterOutputs(th, nan, nan, nan))
    assert all(np.isnan(v).all() for v in fit.values())


def test_forced_photometry_on_a_tile_measures_the_injected_cluster():
    """A cluster painted on a HEALPix tile (nside 1024) is measured at its position; a
    position off the tile file gives NaN."""
    nside, tile_id = 1024, 6
    cfg = mmf.MMFConfig(bands=BANDS)
    margin = tiles.mmf_margin_deg(cfg.patch_size, cfg.pixel_arcmin, nside)
    pixels = tiles.tile_margin_pixels(nside, tile_id, margin)
    glon0, glat0 = hp.pix2ang(2, tile_id, lonlat=True)
    rng = np.random.default_rng(2)
    vec = np.stack(hp.pix2vec(nside, pixels), axis=-1)
    r = np.degrees(np.arccos(np.clip(vec @ hp.ang2vec(glon0, glat0, lonlat=True), -1, 1))) * 60
    theta, y5 = 4.5, 4e-3
    q = np.linspace(0, 2.0, 4001)[1:]  # cycles/arcmin
    rr = np.linspace(0, 120.0, 1201)  # arcmin
    tau = mmf.profile_transform(q, theta)
    area = hp.nside2pixarea(nside, degrees=True) * 3600
    maps = {}
    for b, f, a, s in zip(BANDS, FWHM, TSZ, SIGMA, strict=True):
        # the beam-convolved profile by a Hankel transform of the template's transform
        ft = tau * mmf.beam_transfer(q, f) * q
        prof = 2 * np.pi * np.trapezoid(ft * special.j0(2 * np.pi * q * rr[:, None]), q, axis=1)
        prof = np.interp(r, rr, prof, right=0.0)
        noise = s * 1.718 / np.sqrt(area)  # a 1.7' pixel's noise at the map's pixel area
        maps[b] = (y5 * a * prof + rng.normal(size=len(pixels)) * noise).astype(np.float32)
    tile = tiles.Tile(tile_id, nside, margin, pixels, np.ones(len(pixels), bool), maps)
    fit = photometry.forced_photometry(tile, [glon0, glon0 + 180.0], [glat0, -glat0], cfg)
    assert fit["Y5R500"][0] == pytest.approx(y5, abs=3 * fit["Y5R500_ERR"][0])
    assert fit["SNR"][0] > 5
    assert np.isnan(fit["SNR"][1])
