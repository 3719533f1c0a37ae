"""The fast MMF path (single-precision FFTs, batched patches, spectra and solves per distinct
|k|, vectorised Cholesky, patch geometry by template) against straightforward float64
computations written out mode by mode."""

import numpy as np
import pytest
import test_mmf
from test_mmf import (
    FWHM,
    PIX,
    SIGMA,
    THETAS,
    TSZ,
    analytic_sigma,
    inject_patch,
)

from skydetect.clusters import mmf
from skydetect.clusters.mmf.filter import _solve_spd
from skydetect.clusters.mmf.sampling import PatchGrid
from skydetect.geometry import projection

tile_run = test_mmf.tile_run  # the tile fixture (nside 512, two clusters)


def direct_spectra(maps, window, min_modes=50, smooth=3):
    """Cross-spectra per mode (S, S/2+1, B, B), float64, by the definition: integer |k| rings
    merged from |k| = 1 until each holds ``min_modes`` (Hermitian-weighted) modes, the mean of
    Re(D_i D_j^*) per annulus, a mode-weighted mean over ``smooth`` neighbouring annuli (edge
    annuli repeated), linear interpolation in |k|, normalised by N / sum(w^2)."""
    nb, size, _ = maps.shape
    _, weight, kidx = mmf.fourier_grid(size, PIX)
    d = maps - np.sum(maps * window, axis=(1, 2), keepdims=True) / np.sum(window)
    ft = np.fft.rfft2(d * window)
    ring = np.floor(kidx + 0.5).astype(int)
    counts = np.bincount(ring.ravel(), weights=weight.ravel())
    bins, cur, acc = [], [], 0.0
    for r in range(1, len(counts)):
        cur.append(r)
        acc += counts[r]
        if acc >= min_modes:
            bins.append(cur)
            cur, acc = [], 0.0
    if cur:
        bins[-1] += cur
    means, kc, nm = [], [], []
    for rings in bins:
        sel = np.isin(ring, rings)
        w = weight[sel]
        c = np.einsum("im,jm,m->ij", ft[:, sel], ft[:, sel].conj(), w).real / w.sum()
        means.append(c)
        kc.append(np.average(kidx[sel], weights=w))
        nm.append(w.sum())
    means, nm = np.array(means), np.array(nm)
    h = smooth // 2
    sm = np.array(
        [
            np.sum(nm[ix, None, None] * means[ix], axis=0) / nm[ix].sum()
            for ix in (
                np.clip(np.arange(i - h, i + h + 1), 0, len(bins) - 1) for i in range(len(bins))
            )
        ]
    )
    p = np.empty((*kidx.shape, nb, nb))
    for i in range(nb):
        for j in range(nb):
            p[..., i, j] = np.interp(kidx, kc, sm[:, i, j])
    return p * size * size / np.sum(window**2)


def reference_filter(maps, window, p, thetas):
    """S/N maps (T, S, S) and sigma (T,), float64, mode by mode: Psi = sigma^2 P^-1 F,
    sigma^-2 = sum_k F^T P^-1 F, S/N = sum_k Psi^T D e^{ikx} / sigma."""
    nb, size, _ = maps.shape
    q, weight, kidx = mmf.fourier_grid(size, PIX)
    d = maps - np.sum(maps * window, axis=(1, 2), keepdims=True) / np.sum(window)
    ft = np.fft.rfft2(d * window)
    pinv = np.linalg.inv(p)
    snr, sig = [], []
    for th in thetas:
        tau = mmf.profile_transform(q, th)
        f = np.stack([TSZ[j] * mmf.beam_transfer(q, FWHM[j]) * tau / PIX**2 for j in range(nb)], -1)
        f[kidx == 0] = 0.0
        pf = np.einsum("...ij,...j->...i", pinv, f)
        s2 = 1.0 / np.sum(weight * np.einsum("...i,...i->...", f, pf))
        yhat = np.fft.irfft2(np.einsum("...i,i...->...", pf, ft), s=(size, size)) * size * size * s2
        snr.append(yhat / np.sqrt(s2))
        sig.append(np.sqrt(s2))
    return np.array(snr), np.array(sig)


@pytest.fixture(scope="module")
def cluster_patch():
    size, it = 128, 4
    theta = THETAS[it]
    y5 = 12.0 * analytic_sigma(size, theta)
    rng = np.random.default_rng(21)
    maps = inject_patch(size, y5, theta, 61.4, 70.2)
    maps = maps + rng.normal(size=(6, size, size)) * SIGMA[:, None, None]
    win = mmf.apodisation_window(size, 12)
    return dict(size=size, it=it, maps=maps, win=win, x0=61.4, y0=70.2)


def test_spectrum_estimate_matches_annulus_means_by_definition(cluster_patch):
    c = cluster_patch
    rng = np.random.default_rng(2)
    common = rng.normal(size=(c["size"], c["size"]))
    maps = c["maps"][:3] + np.array([1.0, 0.5, -2.0])[:, None, None] * common * SIGMA[0]
    p = mmf.estimate_noise_spectra(maps, c["win"])
    ref = direct_spectra(maps, c["win"])
    np.testing.assert_allclose(p, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("known", [False, True])
def test_fast_snr_map_matches_float64_reference(cluster_patch, known):
    """Estimated (single pass) or known white-noise spectrum: the single-precision batched
    filter gives the float64 mode-by-mode S/N to 1e-3 of its peak, sigma to 1e-5, and the
    same peak (position and theta500)."""
    c = cluster_patch
    maps, win = c["maps"], c["win"]
    if known:
        p = mmf.white_noise_spectra(SIGMA, c["size"])
        fast = mmf.filter_patch(maps, PIX, FWHM, TSZ, THETAS, window=win, noise_ps=p)
    else:
        p = direct_spectra(maps, win)
        fast = mmf.filter_patch(maps, PIX, FWHM, TSZ, THETAS, window=win, subtract_snr=None)
    snr, sigma = reference_filter(maps, win, p, THETAS)
    assert fast.snr.dtype == np.float32
    np.testing.assert_allclose(fast.sigma, sigma, rtol=1e-5)
    assert np.abs(fast.snr - snr).max() < 1e-3 * np.abs(snr).max()
    y = snr * sigma[:, None, None]
    assert np.abs(fast.y - y).max() < 1e-3 * np.abs(y).max()
    peak = np.unravel_index(np.argmax(snr), snr.shape)
    assert np.unravel_index(np.argmax(fast.snr), fast.snr.shape) == peak
    best = max(mmf.find_peaks(fast, 4.5), key=lambda pk: pk.snr)
    assert best.itheta == int(np.argmax(snr.max(axis=(1, 2))))
    assert abs(best.x - c["x0"]) < 1.0 and abs(best.y - c["y0"]) < 1.0
    assert best.snr == pytest.approx(snr.max(), rel=1e-4)


def test_batched_patches_equal_one_by_one(cluster_patch):
    """A stack of patches (different windows, a bright cluster that triggers the second
    pass in one of them) gives each patch's own result."""
    c = cluster_patch
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(6, c["size"], c["size"])) * SIGMA[:, None, None]
    bright = noise + inject_patch(c["size"], 40.0 * analytic_sigma(c["size"], 3.4), 3.4, 50.0, 64.0)
    stack = np.stack([c["maps"], bright, noise])
    holes = c["win"].copy()
    holes[30:40, 80:90] = 0.0
    wins = np.stack([c["win"], c["win"], holes])
    batch = mmf.filter_patches(stack, PIX, FWHM, TSZ, THETAS, windows=wins, pixwin_nside=2048)
    for i in range(3):
        one = mmf.filter_patch(stack[i], PIX, FWHM, TSZ, THETAS, window=wins[i], pixwin_nside=2048)
        np.testing.assert_allclose(batch[i].snr, one.snr, atol=1e-4)
        np.testing.assert_allclose(batch[i].sigma, one.sigma, rtol=1e-6)
    # the second pass changed the bright patch (its own power no longer counted as noise)
    single = mmf.filter_patch(
        bright, PIX, FWHM, TSZ, THETAS, window=c["win"], pixwin_nside=2048, subtract_snr=None
    )
    assert batch[1].snr.max() > single.snr.max() + 0.5


def test_vectorised_cholesky_solves_like_lapack():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(3, 50, 6, 9))
    scales = np.logspace(-4, 4, 6)  # badly scaled bands, as maps in K and MJy/sr
    p = (m @ np.swapaxes(m, -1, -2)) * scales[:, None] * scales[None, :]
    b = rng.normal(size=(3, 50, 6))
    ref = np.linalg.solve(p, b[..., None])[..., 0]
    np.testing.assert_allclose(_solve_spd(p, b), ref, rtol=1e-8)
    # a matrix that is not positive definite falls back to LAPACK, the others are kept
    p[1, 7] = np.diag([1.0, -1.0, 2.0, 3.0, 4.0, 5.0])
    ref = np.linalg.solve(p, b[..., None])[..., 0]
    np.testing.assert_allclose(_solve_spd(p, b), ref, rtol=1e-8)


def test_patch_grid_equals_the_projection():
    rng = np.random.default_rng(1)
    glon, glat = rng.uniform(0, 360, 6), rng.uniform(-89, 89, 6)
    glat[0] = 90.0  # the pole: the basis is the limit along the meridian
    grid = PatchGrid(64, 1.7)
    bases = grid.bases(glon, glat)
    ref = projection.patch_vectors(glon, glat, 64, 1.7)
    np.testing.assert_allclose(grid.vectors(bases), ref, atol=1e-14)
    for i in range(6):
        lon = glon[i] + rng.uniform(-0.8, 0.8, 2000) / max(np.cos(np.radians(glat[i])), 0.05)
        lat = np.clip(glat[i] + rng.uniform(-0.8, 0.8, 2000), -90, 90)
        px, py = projection.lonlat_to_patch(lon, lat, glon[i], glat[i], 64, 1.7)
        iy, ix = grid.pixel_of(projection.lonlat_to_vec(lon, lat), bases[i])
        assert np.array_equal(ix, np.clip(np.rint(px).astype(int), 0, 63))
        assert np.array_equal(iy, np.clip(np.rint(py).astype(int), 0, 63))


def test_threaded_tile_equals_one_thread(tile_run):
    """Batches filtered by two worker threads give the one-thread tile: same S/N maps,
    sigmas and detections."""
    one = tile_run["res"]
    two = mmf.run_tile(tile_run["tile"], tile_run["cfg"], workers=2)
    np.testing.assert_allclose(two.snr, one.snr, atol=1e-4)
    np.testing.assert_allclose(two.sigma, one.sigma, rtol=1e-6)
    assert len(two.detections) == len(one.detections) >= 1
    for a, b in zip(two.detections, one.detections, strict=True):
        assert a["GLON"] == pytest.approx(b["GLON"], abs=1e-6)
        assert a["SNR"] == pytest.approx(b["SNR"], rel=1e-4)
