"""Injected clusters (skydetect.clusters.inject) and the selection function (selfunc)."""

import healpy as hp
import numpy as np
import pytest
from astropy.table import Table
from scipy import integrate, stats

from skydetect.clusters import inject, selfunc
from skydetect.geometry import tiles
from skydetect.sky import cluster_shapes, foregrounds, physics
from skydetect.sky.instrument import channel

NSIDE = 256
TILE = 6
BANDS = ["143", "353", "y"]


@pytest.fixture(scope="module")
def tile():
    pix = tiles.tile_margin_pixels(NSIDE, TILE, 3.0)
    rng = np.random.default_rng(0)
    maps = {b: rng.normal(0, 1e-5, pix.size).astype(np.float32) for b in BANDS}
    in_tile = tiles.tile_of_pixels(NSIDE, pix) == TILE
    return tiles.Tile(TILE, NSIDE, 3.0, pix, in_tile, maps)


def _cfg(n=24, sep=60.0, y=(1e-3, 1e-2, 1e-1), theta=(2.0, 5.0, 10.0)):
    return inject.InjectConfig(n, y, theta, sep)


def _one(glon, glat, y5, theta):
    return Table({"GLON": [glon], "GLAT": [glat], "Y5R500": [y5], "THETA500": [theta]})


def _sep_arcmin(lon1, lat1, lon2, lat2):
    v1 = hp.ang2vec(np.asarray(lon1), np.asarray(lat1), lonlat=True)
    v2 = hp.ang2vec(np.asarray(lon2), np.asarray(lat2), lonlat=True)
    return np.degrees(np.arccos(np.clip(np.atleast_2d(v1) @ np.atleast_2d(v2).T, -1, 1))) * 60


# --------------------------------------------------------------------------- the profile
@pytest.mark.parametrize("theta500,fwhm", [(1.0, 4.63), (5.0, 7.27), (15.0, 10.0)])
def test_beamed_profile_has_unit_integral(theta500, fwhm):
    r, g = inject.beamed_profile(theta500, fwhm, NSIDE)
    assert integrate.simpson(2 * np.pi * r * g, x=r) == pytest.approx(1.0, abs=2e-3)
    assert g[0] > 0 and abs(g[-1]) < 1e-3 * g[0]


def test_small_cluster_is_the_beam():
    """A cluster far smaller than the beam is the beam: a Gaussian of the beam's width."""
    r, g = inject.beamed_profile(0.05, 10.0)
    sigma = 10.0 * inject.FWHM_TO_SIGMA
    gauss = np.exp(-0.5 * (r / sigma) ** 2) / (2 * np.pi * sigma**2)
    np.testing.assert_allclose(g, gauss, atol=2e-3 * gauss[0])


def test_injected_map_is_original_plus_the_profile(tile):
    """Flux of the injected signal = Y x tSZ factor (pixelisation error only), and the
    injected tile = original + signal."""
    lon, lat = hp.pix2ang(NSIDE, tile.pixels[tile.in_tile][5000], lonlat=True)
    y5, theta = 5e-3, 6.0
    sig = inject.signal_maps(tile, _one(lon, lat, y5, theta), BANDS)
    pix_area = hp.nside2pixarea(NSIDE) * physics.ARCMIN_PER_RAD**2
    for b in BANDS:
        flux = sig[b].astype(float).sum() * pix_area / channel(b).tsz_per_y
        assert flux == pytest.approx(y5, rel=0.01), b
    injected = inject.add_signal(tile, sig)
    for b in BANDS:
        np.testing.assert_allclose(injected.maps[b] - tile.maps[b], sig[b], atol=1e-9)
    # a different tSZ factor per band (143 negative, 353 positive)
    assert sig["143"].min() < 0 < sig["353"].max()


def test_injection_matches_the_mock_painting():
    """The same cluster painted as the mock paints it (the profile at pixel centres, then the
    beam and the pixel window in harmonic space) and injected (the profile convolved with
    both, at pixel centres): the same flux, and the same map to 15 % of the peak at 6.9'
    pixels (the mock samples the profile's central cusp at one pixel centre, a peak 11 %
    higher here and 5 % at 3.4' pixels; the injection averages it over the pixel)."""
    nside, theta, y5, band = 512, 8.0, 2e-2, "143"
    truth = Table({"GLON": [40.0], "GLAT": [50.0], "THETA500": [theta], "Y5R500": [y5],
                   "SHAPE": [0], "AXIS_RATIO": [1.0], "POS_ANGLE": [0.0]})  # fmt: skip
    a10 = physics.ARNAUD10
    library = cluster_shapes.make_library(a10.c500, a10.gamma, a10.alpha, a10.beta, 1.0)
    ymap = cluster_shapes.paint_clusters(nside, truth, library, progress=False)["y"]
    lmax = 3 * nside - 1
    win = hp.gauss_beam(np.radians(channel(band).fwhm_arcmin / 60), lmax)
    win = win * foregrounds.pixel_window(nside, lmax)
    alm = hp.almxfl(hp.map2alm(ymap, lmax=lmax, iter=0), win)
    mock = channel(band).tsz_per_y * hp.alm2map(alm, nside, lmax=lmax)
    t = tiles.tile_of(40.0, 50.0)
    pix = tiles.tile_margin_pixels(nside, int(t), 1.0)
    tl = tiles.Tile(int(t), nside, 1.0, pix, tiles.tile_of_pixels(nside, pix) == t,
                    {band: np.zeros(pix.size, np.float32)})  # fmt: skip
    sig = inject.signal_maps(tl, truth, [band])[band]
    near = hp.query_disc(nside, hp.ang2vec(40.0, 50.0, lonlat=True), np.radians(0.5))
    idx = np.searchsorted(pix, near)
    peak = np.abs(mock[near]).max()
    assert np.max(np.abs(sig[idx] - mock[near])) < 0.15 * peak
    assert sig[idx].sum() == pytest.approx(mock[near].sum(), rel=0.03)


def test_signal_patches_equal_patches_of_the_injected_tile(tile):
    lon, lat = hp.pix2ang(NSIDE, tile.pixels[tile.in_tile][::4000], lonlat=True)
    inj = Table({"GLON": lon, "GLAT": lat, "Y5R500": np.full(lon.size, 1e-2),
                 "THETA500": np.full(lon.size, 5.0)})  # fmt: skip
    sig = inject.signal_maps(tile, inj, BANDS)
    cover = {"glon": lon[:5], "glat": lat[:5], "angle": np.array([0.0, 10, 20, 30, 40]),
             "flip": np.zeros(5, bool)}  # fmt: skip
    for sampling in ("nearest", "bilinear"):
        args = (cover["glon"], cover["glat"], BANDS, 24, 6.0, cover["angle"], cover["flip"],
                sampling)  # fmt: skip
        want = inject.add_signal(tile, sig).cut_patches(*args)
        got = tile.cut_patches(*args) + inject.signal_patches(tile, sig, cover, BANDS, 24, 6.0,
                                                              sampling)  # fmt: skip
        np.testing.assert_allclose(got, want, atol=1e-7)


# --------------------------------------------------------------------------- positions
def test_positions_respect_separation_tile_and_mask(tile):
    rng = np.random.default_rng(1)
    own = tile.pixels[tile.in_tile]
    alon, alat = hp.pix2ang(NSIDE, own[::20000], lonlat=True)
    b0 = float(np.median(hp.pix2ang(NSIDE, own, lonlat=True)[1]))

    def north(glon, glat):
        return np.asarray(glat) > b0

    cfg = _cfg(n=30, sep=45.0)
    t = inject.draw_injections(tile, cfg, rng, avoid=(alon, alat), mask=north)
    assert len(t) == 30
    assert np.all(tiles.tile_of(t["GLON"], t["GLAT"]) == TILE)
    assert np.all(t["GLAT"] > b0)
    assert _sep_arcmin(t["GLON"], t["GLAT"], alon, alat).min() >= 45.0
    d = _sep_arcmin(t["GLON"], t["GLAT"], t["GLON"], t["GLAT"])
    assert d[~np.eye(30, dtype=bool)].min() >= 45.0
    # every cell gets its share, and values lie in their cells
    n, _ = selfunc.cell_counts(t["Y_BIN"], t["THETA_BIN"], np.zeros(30, bool), cfg.shape)
    assert n.min() >= 30 // 4 and n.max() <= 30 // 4 + 1
    assert np.all(selfunc.bin_index(t["Y5R500"], np.array(cfg.y5r500_edges)) == t["Y_BIN"])
    assert np.all(selfunc.bin_index(t["THETA500"], np.array(cfg.theta500_edges)) == t["THETA_BIN"])


def test_no_room_is_a_clear_error(tile):
    with pytest.raises(inject.InjectionError, match="n_per_tile"):
        inject.draw_injections(tile, _cfg(n=200, sep=300.0), np.random.default_rng(2))


def test_mask_file(tmp_path):
    m = np.zeros(hp.nside2npix(16), np.float32)
    m[hp.ang2pix(16, 10.0, 60.0, lonlat=True)] = 1
    path = tmp_path / "mask.fits"
    hp.write_map(str(path), m, nest=False)
    valid = inject.read_mask(path)
    assert list(valid([10.0, 200.0], [60.0, -30.0])) == [True, False]
    hp.write_map(str(path), np.zeros_like(m), overwrite=True)
    with pytest.raises(inject.InjectionError, match="no valid pixel"):
        inject.read_mask(path)


def test_bad_grid_is_refused():
    with pytest.raises(inject.InjectionError, match="y5r500_edges"):
        inject.InjectConfig(10, (1e-3, 1e-3), (1.0, 2.0), 10.0)


# --------------------------------------------------------------------------- counting
@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (17, 40)])
def test_clopper_pearson_is_scipy_exact_interval(k, n):
    frac, lo, hi = selfunc.clopper_pearson(k, n)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=selfunc.CONFIDENCE, method="exact")
    assert frac == pytest.approx(k / n)
    assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)


def test_clopper_pearson_empty_and_bad():
    frac, lo, hi = selfunc.clopper_pearson([0], [0])
    assert np.isnan(frac[0]) and np.isnan(lo[0]) and np.isnan(hi[0])
    with pytest.raises(selfunc.SelectionFunctionError):
        selfunc.clopper_pearson([3], [2])


def test_match_takes_best_score_within_radius():
    inj = _one(10.0, 20.0, 1e-3, 4.0)
    dets = Table({"GLON": [10.0, 10.0, 10.0], "GLAT": [20.0 + 3 / 60, 20.0 + 4 / 60, 20.5],
                  "SNR": [5.0, 7.0, 9.0]})  # fmt: skip
    best, sep = inject.match_injections(inj, dets, "SNR", 1.0, 5.0, 15.0)
    assert best[0] == 7.0 and sep[0] == pytest.approx(4.0, abs=0.01)
    best, _ = inject.match_injections(inj, dets[2:], "SNR", 1.0, 5.0, 15.0)
    assert np.isnan(best[0])


def test_toy_detector_gives_known_completeness(tile):
    """A detector that finds every cluster with Y5R500 >= 3e-3 (a detection 2' off, its
    score Y / 1e-3): completeness 0 below, 1 above, and log(y_hi / 3e-3) / log(y_hi / y_lo)
    in the straddling cells (log-uniform draws)."""
    cfg = _cfg(n=400, sep=8.0)
    t = inject.draw_injections(tile, cfg, np.random.default_rng(3))
    found = t["Y5R500"] >= 3e-3
    dets = Table({"GLON": t["GLON"][found], "GLAT": t["GLAT"][found] + 2 / 60,
                  "SNR": t["Y5R500"][found] / 1e-3})  # fmt: skip
    t["SCORE_toy"], _ = inject.match_injections(t, dets, "SNR", 1.0, 5.0, 15.0)
    grid = selfunc.completeness_grid(
        t, ["toy"], {"toy": {"score": "SNR", "threshold": 3.0}}, cfg.y5r500_edges,
        cfg.theta500_edges,
    )["toy"]  # fmt: skip
    np.testing.assert_array_equal(grid["completeness"][:, 1], 1.0)
    expect = np.log(1e-2 / 3e-3) / np.log(10.0)  # 0.523
    for i in range(2):
        assert grid["lo"][i, 0] - 0.05 <= expect <= grid["hi"][i, 0] + 0.05
        assert grid["n"][i, 0] == 100
    assert np.isfinite(t["SCORE_toy"]).sum() == found.sum()


def test_combined_detects_when_either_part_does():
    t = Table({"Y_BIN": [0, 0, 0, 0], "THETA_BIN": [0, 0, 0, 0],
               "SCORE_u": [0.95, 0.2, np.nan, 0.5], "SCORE_mmf": [3.0, 6.0, np.nan, 4.0]})  # fmt: skip
    thr = {"score": ["PEAK_PROB", "SNR"], "threshold": [0.9, 4.5]}
    assert list(selfunc.detected(t, "combined", thr, ["u", "mmf"])) == [True, True, False, False]
    # with the U-Net confirmed by the MMF at S/N >= 3.5, the first needs S/N 3.0 >= 3.5: lost
    thr["min_snr"] = 3.5
    assert list(selfunc.detected(t, "combined", thr, ["u", "mmf"])) == [False, True, False, False]
    thr["min_snr"] = 2.5
    assert list(selfunc.detected(t, "combined", thr, ["u", "mmf"])) == [True, True, False, False]


# --------------------------------------------------------------------------- files
def test_fits_round_trip(tmp_path):
    y_edges, theta_edges = [1e-3, 1e-2, 1e-1], [1.0, 3.0, 6.0, 15.0]
    rng = np.random.default_rng(4)
    n = rng.integers(0, 30, (3, 2))
    k = rng.integers(0, 1 + n)
    frac, lo, hi = selfunc.clopper_pearson(k, n)
    grid = {d: {"n": n, "k": k, "completeness": frac, "lo": lo, "hi": hi} for d in ("mmf", "u1")}
    thr = {"mmf": {"score": "SNR", "threshold": 4.5}, "u1": {"score": "PEAK_PROB", "threshold": 0.9}}
    path = tmp_path / "selection_function.fits"
    selfunc.write_selection_function(path, grid, y_edges, theta_edges, thr, {"NINJ": 5})
    back, ye, te, tb = selfunc.read_selection_function(path)
    np.testing.assert_allclose(ye, y_edges)
    np.testing.assert_allclose(te, theta_edges)
    for d in grid:
        for key in grid[d]:
            np.testing.assert_array_equal(back[d][key], grid[d][key])
        assert back[d]["completeness"].shape == (3, 2)  # (theta500, Y5R500) as Planck's
    assert tb["mmf"] == {"score": "SNR", "threshold": "4.5"}
    from astropy.io import fits

    with fits.open(path) as h:
        assert {"MMF", "MMF_NINJ", "U1_HI", "THETAS", "Y5R500"} <= {x.name for x in h}


def test_thresholds_file(tmp_path):
    import json

    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps({
        "mmf": {"score": "SNR", "threshold": 4.5},
        "unet_hfi_y": {"score": "PEAK_PROB", "threshold": None},
        "combined": {"unet_run": "unet_hfi", "unet_threshold": 0.8, "mmf_threshold": 5.0},
    }))  # fmt: skip
    thr = selfunc.read_thresholds(path, ["mmf", "unet_hfi_y", "combined"])
    assert thr["mmf"]["threshold"] == 4.5
    assert thr["unet_hfi_y"]["threshold"] == np.inf  # never reached on validation: keeps nothing
    assert thr["combined"] == {"score": ["PEAK_PROB", "SNR"], "threshold": [0.8, 5.0],
                               "min_snr": -np.inf}  # no unet_min_snr: the U-Net alone suffices
    with pytest.raises(selfunc.SelectionFunctionError, match="unet_hfi"):
        selfunc.read_thresholds(path, ["mmf", "unet_hfi"])


# --------------------------------------------------------------------------- mock vs injection
def test_injected_completeness_agrees_with_truth_on_a_small_sky():
    """A small sky: true clusters painted as the mock paints them, beam-smoothed, plus white
    noise; a toy detector (the smoothed map at the cluster above 3 sigma). Clusters injected
    into that sky with the same detector give the truth's completeness in every cell."""
    nside, band = 256, "353"
    rng = np.random.default_rng(5)
    t = tiles.tile_of(0.0, 60.0)
    pix = tiles.tile_margin_pixels(nside, int(t), 2.0)
    own = pix[tiles.tile_of_pixels(nside, pix) == t]
    cfg = inject.InjectConfig(150, (2e-4, 1e-3, 5e-3), (2.0, 5.0, 10.0), 40.0)
    tl = tiles.Tile(int(t), nside, 2.0, pix, tiles.tile_of_pixels(nside, pix) == t,
                    {band: np.zeros(pix.size, np.float32)})  # fmt: skip
    truth = inject.draw_injections(tl, cfg, rng)  # the same grid: log-uniform in each cell
    truth["SHAPE"], truth["AXIS_RATIO"], truth["POS_ANGLE"] = 0, 1.0, 0.0
    a10 = physics.ARNAUD10
    library = cluster_shapes.make_library(a10.c500, a10.gamma, a10.alpha, a10.beta, 1.0)
    ymap = cluster_shapes.paint_clusters(nside, truth, library, progress=False)["y"]
    lmax = 3 * nside - 1
    win = hp.gauss_beam(np.radians(channel(band).fwhm_arcmin / 60), lmax)
    win = win * foregrounds.pixel_window(nside, lmax)
    sky = channel(band).tsz_per_y * hp.alm2map(hp.almxfl(hp.map2alm(ymap, lmax=lmax), win), nside)
    sigma = 4e-5
    sky = sky + rng.normal(0, sigma, sky.size)
    tl.maps[band] = sky[pix].astype(np.float32)

    def toy(table, values):
        ipix = hp.ang2pix(nside, np.asarray(table["GLON"]), np.asarray(table["GLAT"]), lonlat=True)
        return values[np.searchsorted(pix, ipix)] / sigma >= 3.0

    truth["DETECTED"] = toy(truth, tl.maps[band])
    inj_cfg = inject.InjectConfig(150, cfg.y5r500_edges, cfg.theta500_edges, 40.0)
    inj = inject.draw_injections(tl, inj_cfg, rng, avoid=(truth["GLON"], truth["GLAT"]))
    injected = inject.add_signal(tl, inject.signal_maps(tl, inj, [band]))
    inj["SCORE_toy"] = toy(inj, injected.maps[band]).astype(float)
    g = selfunc.completeness_grid(inj, ["toy"], {"toy": {"score": "S", "threshold": 1.0}},
                                  cfg.y5r500_edges, cfg.theta500_edges)["toy"]  # fmt: skip
    tr = selfunc.truth_completeness(truth, cfg.y5r500_edges, cfg.theta500_edges)
    cmp = selfunc.compare_with_truth(g, tr, cfg.y5r500_edges, cfg.theta500_edges)
    assert len(cmp) == 4 and np.all(cmp["N_INJ"] > 0) and np.all(cmp["N_TRUTH"] > 0)
    assert np.all(cmp["AGREE"]), cmp
    # the detector is neither blind nor perfect here: the comparison can fail
    assert 0 < tr["k"].sum() < tr["n"].sum()
    assert own.size > 0


# --------------------------------------------------------------------------- one tile, end to end
def test_run_injections_with_a_toy_network(tmp_path):
    """The per-tile driver on a noise tile: a toy 'network' (probability 1 where the 353 GHz
    patch pixel is above 5 noise sigma) finds the bright injections and none of the faint,
    reading the cover file plus the injected signal; an existing candidate is avoided."""
    from skydetect.clusters import inject_run
    from skydetect.clusters import patches as P
    from skydetect.clusters.cover import write_index
    from skydetect.clusters.detect import DetectParams
    from skydetect.clusters.patch_files import write_patches

    nside, t, size, pix_arcmin, sigma = 128, 6, 16, 27.0, 1e-5
    margin = tiles.cluster_margin_deg(size, pix_arcmin, 0, nside)
    pix = tiles.tile_margin_pixels(nside, t, margin)
    rng = np.random.default_rng(6)
    maps = {b: rng.normal(0, sigma, pix.size).astype(np.float32) for b in ("143", "353")}
    tl = tiles.Tile(t, nside, margin, pix, tiles.tile_of_pixels(nside, pix) == t, maps)
    cfg = P.PatchConfig(bands=["143", "353"], size=size, pixel_arcmin=pix_arcmin,
                        cover_margin=2)  # fmt: skip
    attrs, chunks = P.cover_chunks(tl, Table({"GLON": [0.0], "GLAT": [-89.0]}), cfg, seed=0)
    index = P.cover_index(tl, cfg, nside)
    cover_path = tmp_path / "cover.h5"
    write_patches(cover_path, chunks, cfg, attrs, lambda f: write_index(f, index))
    stats = {"method": "mad", "bands": {b: {"sigma": sigma, "median": 0.0} for b in maps}}

    def toy(batch):  # normalised inputs: arcsinh(x / sigma)
        return (batch[..., 1] > np.arcsinh(5.0)).astype(np.float32)

    run = inject_run.UNetRun(toy, ["143", "353"], DetectParams(threshold=0.5, min_pixels=1,
                             max_radius_arcmin=200.0), {"nside": nside})  # fmt: skip
    icfg = inject.InjectConfig(16, (1e-6, 1e-5, 1e-1, 3e-1), (2.0, 10.0), 300.0)
    lon0, lat0 = hp.pix2ang(nside, pix[tl.in_tile][len(pix) // 3], lonlat=True)
    table = inject_run.run_injections(
        tl, cover_path, icfg, 7, {"toy": run}, stats, avoid=([lon0], [lat0]),
        radius=inject_run.MatchRadius(1.0, 60.0, 60.0), fwhm_overrides={"143": 30.0, "353": 30.0},
    )  # fmt: skip
    assert len(table) == 16 and "SCORE_toy" in table.colnames
    assert _sep_arcmin(table["GLON"], table["GLAT"], [lon0], [lat0]).min() >= 300.0
    bright, faint = table["Y_BIN"] == 2, table["Y_BIN"] == 0  # peaks 40 sigma; 1e-3 sigma
    found = np.isfinite(table["SCORE_toy"])
    assert found[bright].all() and not found[faint].any()
    # the same seed and tile draw the same injections
    again = inject_run.run_injections(tl, cover_path, icfg, 7, {}, stats, avoid=([lon0], [lat0]))
    np.testing.assert_array_equal(again["GLON"], table["GLON"])
    # a signal that does not fit the cover patches is refused, naming the cover file
    from skydetect.clusters.predict import predict_tile

    with pytest.raises(ValueError, match="cover.h5: signal"):
        predict_tile(cover_path, toy, ["143", "353"], stats, t, nside=nside,
                     signal=np.zeros((1, size, size, 2), np.float32))  # fmt: skip


def test_injected_profiles_scatter_as_the_mock_configures():
    """With the mock's scatter keys at zero every injection is Arnaud 2010; with the
    defaults the concentrations scatter by the configured 0.2 dex."""
    from skydetect.clusters.inject import scattered_profiles
    from skydetect.sky import physics

    rng = np.random.default_rng(3)
    rows = Table({"GLON": np.zeros(400)})
    still = scattered_profiles({"profile_c500_scatter_dex": 0.0, "profile_gamma_sigma": 0.0,
                                "profile_alpha_scatter_dex": 0.0, "profile_beta_sigma": 0.0})
    a10 = physics.ARNAUD10
    assert all(g.c500 == pytest.approx(a10.c500) and g.beta == pytest.approx(a10.beta)
               for g in still(rows, rng))  # fmt: skip
    drawn = scattered_profiles(None)(rows, rng)
    assert len(drawn) == 400
    assert np.std(np.log10([g.c500 for g in drawn])) == pytest.approx(0.2, rel=0.15)
    assert scattered_profiles(None)(rows[:0], rng) == []
