"""The MMF over one HEALPix tile: patch centres, sampling, filtering, de-duplication."""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import healpy as hp
import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from skydetect.clusters.mmf.filter import filter_patches
from skydetect.clusters.mmf.noise import apodisation_window
from skydetect.clusters.mmf.peaks import find_peaks
from skydetect.clusters.mmf.profiles import MMFError, profile_params
from skydetect.geometry import projection, tiles
from skydetect.sky.instrument import channel

log = logging.getLogger(__name__)

# patches filtered together (one batched FFT, spectrum and solve; ~60 MB of work arrays)
PATCH_BATCH = 8

@dataclass
class MMFConfig:
    """The ``clusters.mmf`` settings (see config/schema.yaml for their meaning)."""

    bands: list[str]
    theta500_arcmin: list[float] = field(
        default_factory=lambda: [1.0, 1.4, 1.9, 2.5, 3.4, 4.5, 6.1, 8.2, 11.1, 15.0]
    )
    snr_threshold: float = 4.5
    patch_size: int = 128
    pixel_arcmin: float = 1.7
    apodisation_px: int = 12
    pixel_window: bool = True
    profile: str = "arnaud10"
    truncation_r500: float = 5.0
    spectrum_min_modes: int = 50
    spectrum_smooth_bins: int = 3
    subtract_snr: float | None = 10.0
    dedup_radius_arcmin: float = 5.0
    peak_footprint_px: int = 5
    max_invalid_fraction: float = 0.5

    @classmethod
    def from_config(cls, mmf: dict, planck_bands) -> MMFConfig:
        kw = {k: v for k, v in mmf.items() if k in cls.__dataclass_fields__ and k != "bands"}
        freq = [str(b) for b in planck_bands if str(b) != "y"]
        bands = mmf.get("bands") or freq
        bands = [str(b) for b in bands]
        bad = [b for b in bands if b == "y" or b not in freq]
        if bad:
            raise MMFError(
                f"clusters.mmf.bands {bad}: the MMF uses frequency bands present in planck.bands "
                f"({freq})"
            )
        if len(bands) < 1:
            raise MMFError("clusters.mmf.bands: no frequency band to filter")
        return cls(bands=bands, **kw)

    def validate(self) -> None:
        if not self.theta500_arcmin or min(self.theta500_arcmin) <= 0:
            raise MMFError(
                "clusters.mmf.theta500_arcmin must be a non-empty list of positive sizes"
            )
        profile_params(self.profile)


def centre_nside(cfg: MMFConfig, nside_max: int = 1024) -> int:
    """The coarsest even HEALPix (RING) grid whose pixels fit in the patch interior: the patch
    half-width less the apodisation border, a 2-pixel guard and the largest theta500 (so that
    a cluster kept by a patch lies with its core inside the unapodised part and its Y is not
    biased by the taper). Patch centres sit on its pixels. Even, so that its pixels subdivide
    every nside-2 tile exactly (any even nside, not only a power of two: 676 patches per tile
    at 128 x 1.7' instead of 1024)."""
    guard = 2 + max(cfg.theta500_arcmin) / cfg.pixel_arcmin
    half = cfg.patch_size / 2 - cfg.apodisation_px - guard
    half = np.radians(half * cfg.pixel_arcmin / 60.0)
    if half <= 0:
        raise MMFError(
            f"clusters.mmf.patch_size {cfg.patch_size} too small for its apodisation border "
            f"({cfg.apodisation_px} px)"
        )
    nc = tiles.TILE_NSIDE
    while hp.max_pixrad(nc) > half:
        nc += 2
        if nc > nside_max:
            raise MMFError(
                f"clusters.mmf.patch_size {cfg.patch_size} too small for its apodisation border "
                f"({cfg.apodisation_px} px)"
            )
    return nc


def centre_pixels(nc: int, tile: int) -> np.ndarray:
    """Sorted RING pixels at (even) ``nc`` that lie in ``tile``."""
    rings = np.arange(12 * nc * nc)
    return rings[hp.vec2pix(tiles.TILE_NSIDE, *hp.pix2vec(nc, rings)) == int(tile)]


def required_margin_deg(cfg: MMFConfig, nside: int) -> float:
    """Tile margin (deg) the MMF patches need to lie entirely inside a tile file: their
    centres lie inside the tile, so the half-diagonal of a patch plus one map pixel."""
    half_diag = np.sqrt(2.0) * cfg.patch_size / 2.0 * cfg.pixel_arcmin / 60.0
    return float(half_diag + np.degrees(hp.max_pixrad(int(nside))))


def clean_data(data):
    """The tile's maps (P, B) as (B, P) float32 with NaN / UNSEEN set to 0, and (P,) whether
    every band of a pixel is valid: computed once per tile, patches are then gathers."""
    good = (np.isfinite(data) & (data != hp.UNSEEN)).all(axis=1)
    clean = np.where(good[:, None], data, 0.0).astype(np.float32).T
    return np.ascontiguousarray(clean), good


def sample_tile(tile: tiles.Tile, clean, good, vec, lut):
    """Patch values (..., B, S, S) of the tile's maps (``clean``, ``good`` from
    :func:`clean_data`) at unit vectors (..., S, S, 3), nearest HEALPix pixel, tolerant of
    pixels outside the tile file or NaN / UNSEEN (returned as 0 with valid = False); ``lut``
    maps RING pixel - pixels[0] to its index.

    Nearest-pixel sampling, not interpolation: an interpolated map has a noise spectrum that
    falls steeply within each map pixel, and the filter's S/N is then mis-calibrated
    (measured: S/N rms 1.37 instead of 1 with bilinear sampling at 2x oversampling).
    """
    shape = vec.shape[:-1]
    v = vec.reshape(-1, 3)
    rel = hp.vec2pix(tile.nside, v[:, 0], v[:, 1], v[:, 2]) - tile.pixels[0]
    inside = (rel >= 0) & (rel < len(lut))
    idx = lut[np.where(inside, rel, 0)]
    valid = inside & (idx >= 0)
    idx = np.where(valid, idx, 0)
    valid &= good[idx]
    idx, valid = idx.reshape(-1, 1, *shape[-2:]), valid.reshape(-1, 1, *shape[-2:])
    vals = clean[np.arange(len(clean))[:, None, None], idx] * valid  # (C, B, S, S)
    return vals.reshape(*shape[:-2], *vals.shape[1:]), valid.reshape(shape)


class PatchGrid:
    """The pixel geometry shared by every (unrotated) patch of a tile: each patch's pixel
    vectors are the same tangent-plane template in its centre's basis (e_r, e_l, e_b), so
    they are one (S^2, 3) @ (3, 3) product (equal to ``projection.patch_vectors``), and a
    sky vector's patch pixel is its projection on that basis."""

    def __init__(self, size: int, pixel_arcmin: float):
        xi, eta = projection.patch_offsets(size, pixel_arcmin)
        norm = 1.0 / np.sqrt(1.0 + xi**2 + eta**2)
        self.template = np.stack([norm, xi * norm, eta * norm], axis=-1).reshape(-1, 3)
        self.size, self.step = size, np.radians(pixel_arcmin / 60.0)

    @staticmethod
    def bases(glon, glat) -> np.ndarray:
        """(C, 3, 3): rows e_r, e_l, e_b of each centre."""
        return np.stack(projection.tangent_basis(glon, glat), axis=-2)

    def vectors(self, bases) -> np.ndarray:
        """Pixel vectors (C, S, S, 3) of the patches with ``bases`` (C, 3, 3)."""
        return np.matmul(self.template, bases).reshape(len(bases), self.size, self.size, 3)

    def pixel_of(self, vec, basis):
        """Nearest patch pixel (row, column), clipped to the patch, of unit vectors (M, 3)."""
        d = vec @ basis.T  # (M, 3): along e_r, e_l, e_b
        c = (self.size - 1) / 2.0
        x = c - d[:, 1] / d[:, 0] / self.step
        y = c + d[:, 2] / d[:, 0] / self.step
        ix = np.clip(np.rint(x).astype(int), 0, self.size - 1)
        iy = np.clip(np.rint(y).astype(int), 0, self.size - 1)
        return iy, ix


@dataclass
class TileResult:
    detections: list[dict]
    pixels: np.ndarray  # (P,) RING pixels of the tile (no margin)
    snr: np.ndarray  # (T, P) float32
    y: np.ndarray  # (T, P) float32
    theta500: np.ndarray  # (T,)
    centres: np.ndarray  # (C, 2) glon, glat of the patch centres
    sigma: np.ndarray  # (C, T) per patch
    invalid_fraction: float
    nside_centres: int


def run_tile(
    tile: tiles.Tile, cfg: MMFConfig, progress: bool = False, workers: int | None = None
) -> TileResult:
    """Run the MMF over one tile (with its margin) and return detections and S/N maps
    (``workers``: FFT threads, the rule's ``threads:``).

    The linear algebra of a patch is small (6 x 6 solves, 1621 x 81 products): BLAS runs
    single-threaded here, as threaded BLAS on such sizes was measured up to 50x slower on a
    busy machine; the FFTs use ``workers`` threads."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_tile(tile, cfg, progress, workers)


def _run_tile(tile: tiles.Tile, cfg: MMFConfig, progress: bool, workers: int | None):
    cfg.validate()
    missing = [b for b in cfg.bands if b not in tile.maps]
    if missing:
        raise MMFError(f"band(s) {missing} absent from tile file {tile.path} (it has {tile.bands})")
    nside = tile.nside
    thetas = np.asarray(cfg.theta500_arcmin, dtype=float)
    fwhm = [channel(b).fwhm_arcmin for b in cfg.bands]
    tsz = [channel(b).tsz_per_y for b in cfg.bands]
    nc = centre_nside(cfg)
    centres_pix = centre_pixels(nc, tile.tile)
    clon, clat = hp.pix2ang(nc, centres_pix, lonlat=True)
    accept_r = np.degrees(hp.max_pixrad(nc)) + 2 * cfg.pixel_arcmin / 60.0
    # tile pixels (no margin) and the patch each belongs to
    tpix = tile.pixels[tile.in_tile]
    tvec = np.stack(hp.pix2vec(nside, tpix), axis=-1)
    owner = np.searchsorted(centres_pix, hp.vec2pix(nc, *tvec.T))
    snr_hp = np.full((len(thetas), len(tpix)), np.nan, dtype=np.float32)
    y_hp = np.full_like(snr_hp, np.nan)
    sigmas = np.full((len(centres_pix), len(thetas)), np.nan)
    clean, good = clean_data(np.stack([tile.maps[b] for b in cfg.bands], axis=-1))
    lut = np.full(int(tile.pixels[-1] - tile.pixels[0]) + 1, -1, dtype=np.int32)
    lut[tile.pixels - tile.pixels[0]] = np.arange(len(tile.pixels), dtype=np.int32)
    size = cfg.patch_size
    apod = apodisation_window(size, cfg.apodisation_px)
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    rad_px = np.hypot(yy - c, xx - c) * cfg.pixel_arcmin / 60.0
    accept = rad_px <= accept_r
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(len(centres_pix) + 1))
    grid = PatchGrid(size, cfg.pixel_arcmin)
    bases = grid.bases(clon, clat)
    candidates = []
    n_invalid = 0
    threads = max(1, int(workers or 1))

    def work(s0):
        """Sample and filter one batch of patches (in a worker thread: numpy and the FFTs
        release the GIL, so ``workers`` batches run at once, each FFT on one thread)."""
        ics = np.arange(s0, min(s0 + PATCH_BATCH, len(centres_pix)))
        vec = grid.vectors(bases[ics])
        vals, valid = sample_tile(tile, clean, good, vec, lut)  # (C, B, S, S), (C, S, S)
        bad = ~valid
        frac = bad.mean(axis=(1, 2))
        skip = frac > cfg.max_invalid_fraction
        for ic, f in zip(ics[skip], frac[skip], strict=True):
            log.warning(
                "patch at l=%.2f b=%.2f: %.0f %% of pixels outside the tile file or invalid; skipped",
                clon[ic],
                clat[ic],
                100 * f,
            )
        if skip.all():
            return int(bad.sum()), ics[:0], valid[:0], []
        ics, vals, valid = ics[~skip], vals[~skip], valid[~skip]
        results = filter_patches(
            vals,
            cfg.pixel_arcmin,
            fwhm,
            tsz,
            thetas,
            windows=apod * valid,
            pixwin_nside=nside if cfg.pixel_window else None,
            profile=cfg.profile,
            truncation=cfg.truncation_r500,
            min_modes=cfg.spectrum_min_modes,
            smooth_bins=cfg.spectrum_smooth_bins,
            subtract_snr=cfg.subtract_snr,
            workers=1 if threads > 1 else workers,
        )
        return int(bad.sum()), ics, valid, results

    starts = range(0, len(centres_pix), PATCH_BATCH)
    if progress:
        starts = tqdm(starts, desc=f"MMF tile {tile.tile}", unit="batch", mininterval=5.0)
    for nbad, ics, valid, results in _in_order(work, starts, threads):
        n_invalid += nbad
        for ic, ok, res in zip(ics, valid, results, strict=True):
            sigmas[ic] = res.sigma
            for pk in find_peaks(res, cfg.snr_threshold, accept & ok, cfg.peak_footprint_px):
                lon, lat = _patch_to_lonlat(
                    clon[ic], clat[ic], pk.x, pk.y, size, cfg.pixel_arcmin
                )
                candidates.append(
                    {
                        "GLON": lon,
                        "GLAT": lat,
                        "SNR": pk.snr,
                        "THETA500": float(thetas[pk.itheta]),
                        "Y5R500": pk.yval,
                        "NPIX": pk.npix,
                    }
                )
            sel = order[bounds[ic] : bounds[ic + 1]]
            if sel.size:
                iy, ix = grid.pixel_of(tvec[sel], bases[ic])
                snr_hp[:, sel] = res.snr[:, iy, ix]
                y_hp[:, sel] = snr_hp[:, sel] * res.sigma[:, None].astype(np.float32)
    # peaks closer than two patch pixels are not resolved from one another
    dets = _deduplicate(candidates, max(cfg.dedup_radius_arcmin, 2.0 * cfg.pixel_arcmin))
    keep = []
    for d in dets:
        if int(tiles.tile_of(d["GLON"], d["GLAT"])) == tile.tile:
            d["TILE"] = tile.tile
            d["AREA_ARCMIN2"] = d["NPIX"] * cfg.pixel_arcmin**2
            d["RADIUS_ARCMIN"] = float(np.sqrt(d["AREA_ARCMIN2"] / np.pi))
            keep.append(d)
    frac = n_invalid / float(len(centres_pix) * size * size)
    return TileResult(
        detections=keep,
        pixels=tpix,
        snr=snr_hp,
        y=y_hp,
        theta500=thetas,
        centres=np.stack([clon, clat], axis=1),
        sigma=sigmas,
        invalid_fraction=frac,
        nside_centres=nc,
    )


def _in_order(fn, items, threads: int):
    """``fn(item)`` for each item, in order, computed by ``threads`` worker threads with at most
    2 x ``threads`` results waiting (bounded memory); inline with one thread."""
    if threads <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _patch_to_lonlat(glon, glat, x, y, size, pixel_arcmin):
    """Sky position of fractional pixel (x, y) of an unrotated patch (inverse of
    :func:`projection.lonlat_to_patch` with angle 0, no flip: xi = -(x - c), eta = y - c)."""
    c = (size - 1) / 2.0
    step = pixel_arcmin / 60.0
    lon, lat = projection.offset_lonlat(glon, glat, -(x - c) * step, (y - c) * step)
    return float(lon), float(lat)


def _deduplicate(cands: list[dict], radius_arcmin: float) -> list[dict]:
    """One detection per cluster: greedy by S/N, dropping any weaker candidate closer than
    max(``radius_arcmin``, theta500 of the stronger one)."""
    if not cands:
        return []
    cands = sorted(cands, key=lambda d: -d["SNR"])
    vec = projection.lonlat_to_vec([d["GLON"] for d in cands], [d["GLAT"] for d in cands])
    alive = np.ones(len(cands), dtype=bool)
    out = []
    for i, d in enumerate(cands):
        if not alive[i]:
            continue
        out.append(d)
        r = np.radians(max(radius_arcmin, d["THETA500"]) / 60.0)
        close = vec @ vec[i] >= np.cos(r)
        alive &= ~close
    return out


