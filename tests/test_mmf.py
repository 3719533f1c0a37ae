"""Matched multi-frequency filter: template, noise spectra, S/N calibration, tile driver."""

import healpy as hp
import numpy as np
import pytest
from astropy.table import Table
from scipy import ndimage, special

from skydetect.clusters import mmf
from skydetect.geometry import projection, tiles
from skydetect.sky.instrument import channel, noise_per_pixel

BANDS = ["100", "143", "217", "353", "545", "857"]
FWHM = np.array([channel(b).fwhm_arcmin for b in BANDS])
TSZ = np.array([channel(b).tsz_per_y for b in BANDS])
SIGMA = np.array([channel(b).noise_per_1p718_arcmin for b in BANDS])  # per 1.7' pixel
THETAS = np.array([1.0, 1.4, 1.9, 2.5, 3.4, 4.5, 6.1, 8.2, 11.1, 15.0])
PIX = 1.7


def inject_patch(size, y5r500, theta500, x0, y0, over=3):
    """Beam-convolved cluster (B, S, S) drawn in real space, independently of the filter's
    Fourier template: the projected profile on an ``over``-times finer grid, smoothed with
    each Gaussian beam, then averaged into the patch pixels."""
    n = size * over
    c = (np.arange(n) + 0.5) / over - 0.5  # fine-pixel centres in patch pixel units
    yy, xx = np.meshgrid(c, c, indexing="ij")
    r = np.hypot(yy - y0, xx - x0) * PIX
    t = mmf.projected_profile(r / theta500) / theta500**2  # arcmin^-2, unit integral
    out = []
    for f in FWHM:
        s = ndimage.gaussian_filter(t, f / np.sqrt(8 * np.log(2)) / PIX * over, mode="constant")
        out.append(s.reshape(size, over, size, over).mean(axis=(1, 3)))
    return y5r500 * TSZ[:, None, None] * np.array(out)


def analytic_sigma(size, theta500):
    """sigma_theta^-2 = sum_k F^T P^-1 F with the known white-noise spectrum P = N s_j^2."""
    q, weight, kidx = mmf.fourier_grid(size, PIX)
    tau = mmf.profile_transform(q, theta500)
    inv_sigma2 = 0.0
    for j in range(len(BANDS)):
        f = TSZ[j] * mmf.beam_transfer(q, FWHM[j]) * tau / PIX**2
        inv_sigma2 += np.sum(weight * f**2 / (size * size * SIGMA[j] ** 2) * (kidx > 0))
    return 1.0 / np.sqrt(inv_sigma2)


# ------------------------------------------------------------------------------ template
def test_projected_profile_has_unit_integral_and_is_truncated():
    u = np.linspace(0, 5, 20001)
    g = mmf.projected_profile(u)
    assert np.trapezoid(2 * np.pi * u * g, u) == pytest.approx(1.0, rel=2e-3)
    assert mmf.projected_profile(5.2) == 0.0
    assert np.all(np.diff(g) <= 1e-12)  # decreasing outwards
    # the Planck Int. V shape is less concentrated in the core than Arnaud et al. 2010
    assert mmf.projected_profile(0.05, "planck_int_v") < mmf.projected_profile(0.05)


def test_profile_transform_matches_fft_of_real_space_template():
    size, pix, theta = 512, 0.5, 10.0
    c = (np.arange(size) - size // 2) * pix
    yy, xx = np.meshgrid(c, c, indexing="ij")
    t = mmf.projected_profile(np.hypot(yy, xx) / theta) / theta**2
    ft = np.abs(np.fft.fft2(t)) * pix**2  # continuous FT; the centre shift drops in |.|
    q = np.hypot(*np.meshgrid(np.fft.fftfreq(size, pix), np.fft.fftfreq(size, pix), indexing="ij"))
    sel = q * theta < 1.5
    assert np.abs(ft[0, 0] - 1.0) < 5e-3
    np.testing.assert_allclose(ft[sel], mmf.profile_transform(q[sel], theta), atol=1.5e-2)


def test_healpix_pixel_window_matches_pixel_averaging():
    """ud_grade averages the sub-pixels of each pixel: the power it keeps is the window^2."""
    lmax, nside = 128, 64
    ell = np.arange(lmax + 1)
    cl = 1.0 / (ell + 10.0) ** 2
    rng = np.random.default_rng(2)
    lm_l, lm_m = hp.Alm.getlm(lmax)
    alm = (rng.normal(size=lm_l.size) + 1j * rng.normal(size=lm_l.size)) / np.sqrt(2.0)
    alm[lm_m == 0] = alm[lm_m == 0].real * np.sqrt(2.0)
    fine = hp.alm2map(alm * np.sqrt(cl[lm_l]), 256, lmax=lmax)
    ratio = hp.anafast(hp.ud_grade(fine, nside), lmax=lmax) / hp.anafast(fine, lmax=lmax)
    q = ell / (2 * np.pi * 180 * 60 / np.pi)  # cycles / arcmin
    w2 = (mmf.healpix_pixel_window(q, nside) / mmf.healpix_pixel_window(q, 256)) ** 2
    np.testing.assert_allclose(ratio[10:], w2[10:], rtol=0.03)
    assert w2[lmax] < 0.75  # the check has teeth: the window is far from 1 there


# ------------------------------------------------------------------------------ spectra
def test_noise_spectra_white_and_correlated():
    rng = np.random.default_rng(3)
    size = 128
    sig = np.array([1.0, 2.0, 0.5])
    common = rng.normal(size=(size, size))
    coef = np.array([1.0, -0.5, 0.0])
    maps = rng.normal(size=(3, size, size)) * sig[:, None, None] + coef[:, None, None] * common
    win = mmf.apodisation_window(size, 12)
    p = mmf.estimate_noise_spectra(maps, win)
    _, weight, kidx = mmf.fourier_grid(size, 1.0)
    sel = kidx > 8
    mean = np.array(
        [[np.average(p[..., i, j][sel], weights=weight[sel]) for j in range(3)] for i in range(3)]
    )
    expected = (np.diag(sig**2) + np.outer(coef, coef)) * size * size
    np.testing.assert_allclose(mean, expected, atol=0.06 * size * size)
    # the spectrum is a symmetric positive-definite matrix at every mode
    assert np.allclose(p, np.swapaxes(p, -1, -2))
    assert np.all(np.linalg.eigvalsh(p[kidx > 0]) > 0)


# ------------------------------------------------------------------------------ filter
@pytest.fixture(scope="module")
def bright_cluster():
    size, it, snr_true = 256, 7, 30.0
    theta = THETAS[it]
    sigma = analytic_sigma(size, theta)
    y5 = snr_true * sigma
    x0, y0 = 130.3, 120.0
    rng = np.random.default_rng(11)
    maps = (
        inject_patch(size, y5, theta, x0, y0)
        + rng.normal(size=(6, size, size)) * SIGMA[:, None, None]
    )
    return dict(size=size, it=it, theta=theta, sigma=sigma, y5=y5, x0=x0, y0=y0, maps=maps)


def test_known_spectrum_sigma_is_the_analytic_one(bright_cluster):
    b = bright_cluster
    p = mmf.white_noise_spectra(SIGMA, b["size"])
    res = mmf.filter_patch(b["maps"], PIX, FWHM, TSZ, [b["theta"]], noise_ps=p)
    assert res.sigma[0] == pytest.approx(b["sigma"], rel=1e-6)
    # unbiased Y at the true position with the true template (noise: 1 sigma = 3.3 %)
    assert res.y[0, round(b["y0"]), round(b["x0"])] == pytest.approx(b["y5"], rel=0.15)


def test_single_cluster_recovered_in_white_noise(bright_cluster):
    b = bright_cluster
    win = mmf.apodisation_window(b["size"], 16)
    res = mmf.filter_patch(b["maps"], PIX, FWHM, TSZ, THETAS, window=win)  # spectrum from data
    peaks = mmf.find_peaks(res, 4.5)
    best = max(peaks, key=lambda p: p.snr)
    assert abs(best.x - b["x0"]) < 1.0 and abs(best.y - b["y0"]) < 1.0
    assert best.itheta == b["it"]
    analytic = b["y5"] / b["sigma"]  # = 30
    assert best.snr == pytest.approx(analytic, rel=0.10)
    assert best.yval == pytest.approx(b["y5"], rel=0.10)
    # the cluster is found once: no other peak above threshold within 30'
    near = [p for p in peaks if np.hypot(p.x - b["x0"], p.y - b["y0"]) * PIX < 30 and p is not best]
    assert not near
    # without the second pass, the cluster's own power inflates the estimated noise
    one_pass = mmf.filter_patch(b["maps"], PIX, FWHM, TSZ, THETAS, window=win, subtract_snr=None)
    snr1 = one_pass.snr[:, round(best.y), round(best.x)].max()
    assert snr1 < best.snr and abs(snr1 - analytic) > abs(best.snr - analytic)


def test_null_snr_map_has_unit_variance():
    """Pure noise (white + a CMB-like red component common to all bands): the S/N maps,
    filtered with spectra estimated from the data, have unit variance."""
    size, nrep = 256, 3
    rng = np.random.default_rng(5)
    q, _, _ = mmf.fourier_grid(size, PIX)
    kcmb = np.array([1.0, 1.0, 1.0, 1.0, 58.04, 2.27])  # CMB in each band's unit
    win = mmf.apodisation_window(size, 16)
    interior = (slice(40, -40), slice(40, -40))
    snr = []
    for _ in range(nrep):
        amp = 2e-5 / np.maximum(q, 1.0 / (size * PIX)) ** 1.2
        cmb = np.fft.irfft2(amp * np.fft.rfft2(rng.normal(size=(size, size))), s=(size, size))
        maps = rng.normal(size=(6, size, size)) * SIGMA[:, None, None]
        maps += kcmb[:, None, None] * cmb
        res = mmf.filter_patch(maps, PIX, FWHM, TSZ, THETAS, window=win)
        snr.append(res.snr[(slice(None), *interior)])
    std = np.concatenate(snr, axis=1).std(axis=(1, 2))
    np.testing.assert_allclose(std, 1.0, atol=0.05)
    # and the filter did need the cross-spectra: the red component dominates the maps
    assert np.std(cmb) > 3 * SIGMA[1]


def test_filter_patch_rejects_bad_shapes():
    with pytest.raises(mmf.MMFError, match="bands, S, S"):
        mmf.filter_patch(np.zeros((2, 16, 8)), PIX, [5, 5], [1, 1], [2.0])
    with pytest.raises(mmf.MMFError, match="one beam and one tSZ factor per band"):
        mmf.filter_patch(np.ones((2, 16, 16)), PIX, [5], [1, 1], [2.0])


# ------------------------------------------------------------------------------ config
def test_config_bands_and_profile_errors():
    cfg = mmf.MMFConfig.from_config({}, ["100", "143", "y"])
    assert cfg.bands == ["100", "143"]
    with pytest.raises(mmf.MMFError, match="clusters.mmf.bands"):
        mmf.MMFConfig.from_config({"bands": ["y"]}, ["100", "y"])
    with pytest.raises(mmf.MMFError, match="clusters.mmf.bands"):
        mmf.MMFConfig.from_config({"bands": ["353"]}, ["100", "143"])
    with pytest.raises(mmf.MMFError, match="clusters.mmf.profile"):
        mmf.MMFConfig(bands=["100"], profile="beta").validate()
    with pytest.raises(mmf.MMFError, match="patch_size"):
        mmf.centre_nside(mmf.MMFConfig(bands=["100"], patch_size=32, apodisation_px=14))


# ------------------------------------------------------------------------------ tile
def _hp_clusters(nside, pixels, positions, y5, theta, bands):
    """Beam-convolved clusters evaluated at HEALPix pixel centres (per band, map units): the
    radial profile of beam * template from its Hankel transform."""
    q = np.linspace(0, 0.4, 1200)
    r = np.linspace(0, 6 * theta, 300)
    j0 = special.j0(2 * np.pi * q * r[:, None]) * 2 * np.pi * q
    vec = np.asarray(hp.pix2vec(nside, pixels)).T
    out = {b: np.zeros(len(pixels)) for b in bands}
    for pos in positions:
        d = np.degrees(np.arccos(np.clip(vec @ projection.lonlat_to_vec(*pos), -1, 1))) * 60
        near = d < r[-1]
        for b in bands:
            ft = mmf.beam_transfer(q, channel(b).fwhm_arcmin) * mmf.profile_transform(q, theta)
            prof = np.trapezoid(ft * j0, q, axis=1)
            out[b][near] += y5 * channel(b).tsz_per_y * np.interp(d[near], r, prof)
    return out


@pytest.fixture(scope="module")
def tile_run(tmp_path_factory):
    nside, tile = 512, 6
    cfg = mmf.MMFConfig(bands=BANDS, patch_size=64, pixel_arcmin=6.8, apodisation_px=6)
    margin = tiles.mmf_margin_deg(cfg.patch_size, cfg.pixel_arcmin, nside)
    pix = tiles.tile_margin_pixels(nside, tile, margin)
    rng = np.random.default_rng(0)
    maps = {b: rng.normal(size=pix.size) * noise_per_pixel(b, nside) for b in BANDS}
    # one cluster in the tile, one in the margin (another tile's)
    lon_c, lat_c = hp.pix2ang(2, tile, lonlat=True)
    inside = (float(lon_c) + 3.0, float(lat_c) - 2.0)
    outside = None
    for dl in np.arange(5, 40, 0.5):
        lo = float(lon_c) + dl
        if tiles.tile_of(lo, lat_c) != tile:
            outside = (lo + 1.0, float(lat_c))
            break
    assert tiles.tile_of(*inside) == tile and tiles.tile_of(*outside) != tile
    cl = _hp_clusters(nside, pix, [inside, outside], 0.01, 8.2, BANDS)
    for b in BANDS:
        maps[b] = maps[b] + cl[b]
    t = tiles.Tile(
        tile=tile,
        nside=nside,
        margin_deg=margin,
        pixels=pix,
        in_tile=tiles.tile_of_pixels(nside, pix) == tile,
        maps={b: m.astype(np.float32) for b, m in maps.items()},
        path="synthetic",
    )
    res = mmf.run_tile(t, cfg)
    out = tmp_path_factory.mktemp("mmf")
    mmf.write_detections(out / "6.ecsv", res.detections, {"tile": tile})
    mmf.write_snr_map(out / "6.h5", res, nside, tile)
    return dict(res=res, inside=inside, outside=outside, out=out, nside=nside, tile=t, cfg=cfg)


def test_run_tile_finds_the_cluster_once_and_only_in_its_tile(tile_run):
    res, (l0, b0) = tile_run["res"], tile_run["inside"]
    det = Table.read(tile_run["out"] / "6.ecsv")
    assert mmf.DETECTION_COLUMNS == det.colnames
    # one detection-table contract: the U-Net's columns first, read by the U-Net's reader
    from skydetect.clusters import detect

    assert det.colnames[: len(detect.DETECTION_COLUMNS)] == detect.DETECTION_COLUMNS
    assert len(detect.read_detections(tile_run["out"] / "6.ecsv")) == len(det)
    assert det["GLON"].unit == "deg" and det["AREA_ARCMIN2"].unit == "arcmin2"
    assert np.all(det["TILE"] == 6) and np.all(det["SNR"] >= 4.5)
    assert np.all(tiles.tile_of(det["GLON"], det["GLAT"]) == 6)
    sep = (
        np.degrees(
            np.arccos(
                np.clip(
                    projection.lonlat_to_vec(det["GLON"], det["GLAT"])
                    @ projection.lonlat_to_vec(l0, b0),
                    -1,
                    1,
                )
            )
        )
        * 60
    )
    near = sep < 30
    assert near.sum() == 1  # one detection per cluster across overlapping patches
    hit = det[near][0]
    assert sep[near][0] < hp.nside2resol(512, arcmin=True)  # within a map pixel (6.9')
    assert hit["SNR"] > 10 and hit["SNR"] == det["SNR"].max()
    assert 4.5 <= hit["THETA500"] <= 15.0
    assert hit["Y5R500"] == pytest.approx(0.01, rel=0.3)
    assert np.isnan(hit["PEAK_PROB"]) and det["THETA500"].unit == "arcmin"
    # RA/Dec are the ICRS position of GLON/GLAT
    from astropy.coordinates import SkyCoord

    c = SkyCoord(l=hit["GLON"], b=hit["GLAT"], unit="deg", frame="galactic").icrs
    assert c.ra.deg == pytest.approx(hit["RA"], abs=1e-6)
    # the cluster in the margin belongs to another tile: not reported here
    lo, bo = tile_run["outside"]
    vo = projection.lonlat_to_vec(lo, bo)
    assert np.all(projection.lonlat_to_vec(det["GLON"], det["GLAT"]) @ vo < np.cos(np.radians(0.5)))
    assert res.invalid_fraction == 0.0


def test_snr_map_file_covers_the_tile(tile_run):
    m = mmf.read_snr_map(tile_run["out"] / "6.h5")
    nside = tile_run["nside"]
    np.testing.assert_array_equal(m["pixels"], tiles.tile_pixels(nside, 6))
    assert m["snr"].shape == (10, len(m["pixels"])) and m["y5r500"].shape == m["snr"].shape
    assert not np.isnan(m["snr"]).any()
    # noise-dominated away from the clusters: unit variance on the small-theta bins
    vec = hp.pix2vec(nside, m["pixels"])
    far = np.ones(len(m["pixels"]), dtype=bool)
    for pos in (tile_run["inside"], tile_run["outside"]):
        far &= np.asarray(vec).T @ projection.lonlat_to_vec(*pos) < np.cos(np.radians(1.5))
    assert np.std(m["snr"][:3, far], axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=0.06)
    # the S/N map peaks at the injected cluster
    l0, b0 = tile_run["inside"]
    ipk = np.argmax(m["snr"].max(axis=0))
    lon, lat = hp.pix2ang(nside, m["pixels"][ipk], lonlat=True)
    assert np.hypot((lon - l0) * np.cos(np.radians(b0)), lat - b0) * 60 < 10
    assert m["attrs"]["tile"] == 6 and not list(tile_run["out"].glob("*.tmp"))


def test_run_tile_errors_name_the_problem(tile_run, tmp_path):
    t = tile_run["tile"]
    cfg = mmf.MMFConfig(bands=["100", "143"], patch_size=64, pixel_arcmin=6.8, apodisation_px=6)
    t2 = tiles.Tile(
        t.tile, t.nside, t.margin_deg, t.pixels, t.in_tile, {"100": t.maps["100"]}, path="x.h5"
    )
    with pytest.raises(mmf.MMFError, match=r"\['143'\].*x.h5"):
        mmf.run_tile(t2, cfg)
    with pytest.raises(mmf.MMFError, match="nothing.h5"):
        mmf.read_snr_map(tmp_path / "nothing.h5")


def test_snr_figure_marks_the_cluster(tile_run, tmp_path):
    from skydetect.plots.mmf import plot_snr_map, snr_image

    m = mmf.read_snr_map(tile_run["out"] / "6.h5")
    img, extent, glon, glat, pix = snr_image(m["pixels"], m["snr"].max(axis=0), tile_run["nside"])
    # the brightest image pixel lies at the injected cluster (l increasing to the left)
    iy, ix = np.unravel_index(np.nanargmax(img), img.shape)
    lon, lat = projection.patch_lonlat(glon, glat, img.shape[0], pix)
    l0, b0 = tile_run["inside"]
    assert np.hypot((lon[iy, ix] - l0) * np.cos(np.radians(b0)), lat[iy, ix] - b0) * 60 < 10
    assert np.isnan(img).any() and np.isfinite(img).mean() > 0.2  # the tile, not the square
    det = Table.read(tile_run["out"] / "6.ecsv")
    plot_snr_map(m, det, tmp_path / "snr.png")
    assert (tmp_path / "snr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
