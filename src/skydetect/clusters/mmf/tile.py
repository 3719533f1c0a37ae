"""The MMF over one HEALPix tile: patch centres, sampling, filtering, de-duplication."""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import healpy as hp
import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from skydetect.clusters.mmf.filter import filter_patches
from skydetect.clusters.mmf.noise import apodisation_window
from skydetect.clusters.mmf.peaks import find_peaks
from skydetect.clusters.mmf.profiles import MMFError, profile_params
from skydetect.clusters.mmf.sampling import PatchGrid, clean_data, sample_tile
from skydetect.geometry import projection, tiles
from skydetect.schema import copied_default, schema_defaults
from skydetect.sky.instrument import channel

log = logging.getLogger(__name__)

# patches filtered together (one batched FFT, spectrum and solve; ~60 MB of work arrays)
PATCH_BATCH = 8
_DEFAULTS = schema_defaults("clusters.mmf")


@dataclass
class MMFConfig:
    """The ``clusters.mmf`` settings (see config/schema.yaml for their meaning)."""

    bands: list[str]
    theta500_arcmin: list[float] = copied_default(_DEFAULTS, "theta500_arcmin")
    snr_threshold: float = _DEFAULTS["snr_threshold"]
    patch_size: int = _DEFAULTS["patch_size"]
    pixel_arcmin: float = _DEFAULTS["pixel_arcmin"]
    apodisation_px: int = _DEFAULTS["apodisation_px"]
    pixel_window: bool = _DEFAULTS["pixel_window"]
    profile: str = _DEFAULTS["profile"]
    truncation_r500: float = _DEFAULTS["truncation_r500"]
    spectrum_min_modes: int = _DEFAULTS["spectrum_min_modes"]
    spectrum_smooth_bins: int = _DEFAULTS["spectrum_smooth_bins"]
    subtract_snr: float | None = _DEFAULTS["subtract_snr"]
    dedup_radius_arcmin: float = _DEFAULTS["dedup_radius_arcmin"]
    peak_footprint_px: int = _DEFAULTS["peak_footprint_px"]
    max_invalid_fraction: float = _DEFAULTS["max_invalid_fraction"]

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


@dataclass
class _TilePlan:
    """The patches of a tile and where the tile's own pixels fall in them."""

    nc: int  # NSIDE of the patch centres
    centres_pix: np.ndarray  # (C,) RING pixels (at nc) of the patch centres
    clon: np.ndarray  # (C,) Galactic longitude of the centres
    clat: np.ndarray  # (C,)
    accept: np.ndarray  # (S, S) patch pixels close enough to the centre to report a peak
    tpix: np.ndarray  # (P,) the tile's pixels (no margin)
    tvec: np.ndarray  # (P, 3) their unit vectors
    order: np.ndarray  # tile pixels sorted by the patch that owns them ...
    bounds: np.ndarray  # ... patch ic owns order[bounds[ic]:bounds[ic + 1]]
    grid: PatchGrid
    bases: np.ndarray  # (C, 3, 3)


def _plan_patches(tile: tiles.Tile, cfg: MMFConfig) -> _TilePlan:
    nc = centre_nside(cfg)
    centres_pix = centre_pixels(nc, tile.tile)
    clon, clat = hp.pix2ang(nc, centres_pix, lonlat=True)
    accept_r = np.degrees(hp.max_pixrad(nc)) + 2 * cfg.pixel_arcmin / 60.0
    # tile pixels (no margin) and the patch each belongs to
    tpix = tile.pixels[tile.in_tile]
    tvec = np.stack(hp.pix2vec(tile.nside, tpix), axis=-1)
    owner = np.searchsorted(centres_pix, hp.vec2pix(nc, *tvec.T))
    size = cfg.patch_size
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    rad_px = np.hypot(yy - c, xx - c) * cfg.pixel_arcmin / 60.0
    order = np.argsort(owner, kind="stable")
    grid = PatchGrid(size, cfg.pixel_arcmin)
    return _TilePlan(
        nc=nc,
        centres_pix=centres_pix,
        clon=clon,
        clat=clat,
        accept=rad_px <= accept_r,
        tpix=tpix,
        tvec=tvec,
        order=order,
        bounds=np.searchsorted(owner[order], np.arange(len(centres_pix) + 1)),
        grid=grid,
        bases=grid.bases(clon, clat),
    )


def _tile_lut(tile: tiles.Tile) -> np.ndarray:
    """RING pixel - pixels[0] -> index into the tile file's pixels (-1: not in the file)."""
    lut = np.full(int(tile.pixels[-1] - tile.pixels[0]) + 1, -1, dtype=np.int32)
    lut[tile.pixels - tile.pixels[0]] = np.arange(len(tile.pixels), dtype=np.int32)
    return lut


def _batch_filter(tile: tiles.Tile, cfg: MMFConfig, plan: _TilePlan, workers: int | None):
    """``work(s0)``: sample and filter the batch of patches from ``s0`` (in a worker thread:
    numpy and the FFTs release the GIL, so ``workers`` batches run at once, each FFT on one
    thread); returns (invalid pixels, patch indices, valid masks, filter results)."""
    thetas = np.asarray(cfg.theta500_arcmin, dtype=float)
    fwhm = [channel(b).fwhm_arcmin for b in cfg.bands]
    tsz = [channel(b).tsz_per_y for b in cfg.bands]
    clean, good = clean_data(np.stack([tile.maps[b] for b in cfg.bands], axis=-1))
    lut = _tile_lut(tile)
    apod = apodisation_window(cfg.patch_size, cfg.apodisation_px)
    threads = max(1, int(workers or 1))
    n_centres = len(plan.centres_pix)

    def work(s0):
        ics = np.arange(s0, min(s0 + PATCH_BATCH, n_centres))
        vec = plan.grid.vectors(plan.bases[ics])
        vals, valid = sample_tile(tile, clean, good, vec, lut)  # (C, B, S, S), (C, S, S)
        bad = ~valid
        frac = bad.mean(axis=(1, 2))
        skip = frac > cfg.max_invalid_fraction
        for ic, f in zip(ics[skip], frac[skip], strict=True):
            log.warning(
                "patch at l=%.2f b=%.2f: %.0f %% of pixels outside the tile file or invalid; skipped",
                plan.clon[ic],
                plan.clat[ic],
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
            pixwin_nside=tile.nside if cfg.pixel_window else None,
            profile=cfg.profile,
            truncation=cfg.truncation_r500,
            min_modes=cfg.spectrum_min_modes,
            smooth_bins=cfg.spectrum_smooth_bins,
            subtract_snr=cfg.subtract_snr,
            workers=1 if threads > 1 else workers,
        )
        return int(bad.sum()), ics, valid, results

    return work


def _patch_candidates(res, ic: int, ok, plan: _TilePlan, cfg: MMFConfig, thetas) -> list[dict]:
    """The peaks of patch ``ic``'s filter result ``res`` (valid pixels ``ok``) on the sky."""
    out = []
    for pk in find_peaks(res, cfg.snr_threshold, plan.accept & ok, cfg.peak_footprint_px):
        lon, lat = _patch_to_lonlat(
            plan.clon[ic], plan.clat[ic], pk.x, pk.y, cfg.patch_size, cfg.pixel_arcmin
        )
        out.append(
            {
                "GLON": lon,
                "GLAT": lat,
                "SNR": pk.snr,
                "THETA500": float(thetas[pk.itheta]),
                "Y5R500": pk.yval,
                "NPIX": pk.npix,
            }
        )
    return out


def _tile_detections(candidates: list[dict], tile: tiles.Tile, cfg: MMFConfig) -> list[dict]:
    """The candidates, merged, that lie in the tile itself, with their tile and area."""
    # peaks closer than two patch pixels are not resolved from one another
    dets = _deduplicate(candidates, max(cfg.dedup_radius_arcmin, 2.0 * cfg.pixel_arcmin))
    keep = []
    for d in dets:
        if int(tiles.tile_of(d["GLON"], d["GLAT"])) == tile.tile:
            d["TILE"] = tile.tile
            d["AREA_ARCMIN2"] = d["NPIX"] * cfg.pixel_arcmin**2
            d["RADIUS_ARCMIN"] = float(np.sqrt(d["AREA_ARCMIN2"] / np.pi))
            keep.append(d)
    return keep


def _run_tile(tile: tiles.Tile, cfg: MMFConfig, progress: bool, workers: int | None):
    cfg.validate()
    missing = [b for b in cfg.bands if b not in tile.maps]
    if missing:
        raise MMFError(f"band(s) {missing} absent from tile file {tile.path} (it has {tile.bands})")
    thetas = np.asarray(cfg.theta500_arcmin, dtype=float)
    plan = _plan_patches(tile, cfg)
    n_centres = len(plan.centres_pix)
    snr_hp = np.full((len(thetas), len(plan.tpix)), np.nan, dtype=np.float32)
    y_hp = np.full_like(snr_hp, np.nan)
    sigmas = np.full((n_centres, len(thetas)), np.nan)
    work = _batch_filter(tile, cfg, plan, workers)
    candidates = []
    n_invalid = 0
    starts = range(0, n_centres, PATCH_BATCH)
    if progress:
        starts = tqdm(starts, desc=f"MMF tile {tile.tile}", unit="batch", mininterval=5.0)
    for nbad, ics, valid, results in _in_order(work, starts, max(1, int(workers or 1))):
        n_invalid += nbad
        for ic, ok, res in zip(ics, valid, results, strict=True):
            sigmas[ic] = res.sigma
            candidates += _patch_candidates(res, ic, ok, plan, cfg, thetas)
            sel = plan.order[plan.bounds[ic] : plan.bounds[ic + 1]]
            if sel.size:
                iy, ix = plan.grid.pixel_of(plan.tvec[sel], plan.bases[ic])
                snr_hp[:, sel] = res.snr[:, iy, ix]
                y_hp[:, sel] = snr_hp[:, sel] * res.sigma[:, None].astype(np.float32)
    size = cfg.patch_size
    return TileResult(
        detections=_tile_detections(candidates, tile, cfg),
        pixels=plan.tpix,
        snr=snr_hp,
        y=y_hp,
        theta500=thetas,
        centres=np.stack([plan.clon, plan.clat], axis=1),
        sigma=sigmas,
        invalid_fraction=n_invalid / float(n_centres * size * size),
        nside_centres=plan.nc,
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
