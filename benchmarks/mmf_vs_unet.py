"""Benchmark of the two cluster detectors on one tile: the MMF (rule mmf_tile) and the U-Net
(rule predict_tile), end to end, in the same process, on the same threads.

The one benchmark of the two detectors (it replaces a second one that timed the U-Net on a
sample of patches and the MMF patch by patch, and disagreed with this one). For the default
configuration (config/config.yaml):

* MMF: wall time of ``skydetect.clusters.mmf.run_tile`` end to end (patch sampling from the
  tile file, noise spectra, filtering for every theta500, peaks, de-duplication, S/N map on
  the tile's HEALPix pixels) on a synthetic tile at ``planck.nside``: white noise at the
  instrument levels plus a CMB-like red component common to all bands; FFTs on ``--threads``;
* U-Net: an untrained network of the default architecture (inference cost does not depend
  on the weights) on *all* the patches of the tile's cover (``clusters.patch.cover_margin``)
  cut from the same synthetic tile, through the compiled step at ``clusters.detect.precision``,
  then the combination on the sphere through the cover's index (built beforehand, as
  ``cut_cover`` does; its time is reported apart) and the detection extraction.

Prints a table with the ratio and writes it to benchmarks/results/mmf_vs_unet.md.

    python benchmarks/mmf_vs_unet.py [--tile 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import healpy as hp
import numpy as np
import yaml
from astropy.table import Table

import skydetect  # noqa: F401  (legacy Keras before TensorFlow)
from skydetect.clusters import cover, inference, mmf, normalise, patches
from skydetect.clusters.detect import DetectParams, find_detections
from skydetect.clusters.models import build_model
from skydetect.clusters.predict import prediction_nside
from skydetect.config import validate_config
from skydetect.geometry import tiles
from skydetect.sky.instrument import noise_per_pixel

ROOT = Path(__file__).resolve().parents[1]


def synthetic_tile(tile: int, nside: int, bands, margin_deg: float, seed) -> tiles.Tile:
    """White noise at the instrument levels plus a red component (C_ell ~ ell^-2, 100 uK rms
    in K_CMB bands) common to all bands, on the tile and its margin."""
    rng = np.random.default_rng(seed)
    pix = tiles.tile_margin_pixels(nside, tile, margin_deg)
    lmax = 3 * nside - 1
    ell = np.arange(lmax + 1)
    cl = np.where(ell > 1, 1.0 / np.maximum(ell, 1) ** 2, 0.0)
    lm_l, lm_m = hp.Alm.getlm(lmax)
    alm = (rng.normal(size=lm_l.size) + 1j * rng.normal(size=lm_l.size)) / np.sqrt(2.0)
    alm[lm_m == 0] = alm[lm_m == 0].real * np.sqrt(2.0)
    red = hp.alm2map(alm * np.sqrt(cl[lm_l]), nside, lmax=lmax)[pix]
    red *= 1e-4 / red.std()
    kcmb = {"545": 58.04, "857": 2.27}
    maps = {
        b: (rng.normal(size=pix.size) * noise_per_pixel(b, nside) + kcmb.get(b, 1.0) * red).astype(
            np.float32
        )
        for b in bands
    }
    in_tile = tiles.tile_of_pixels(nside, pix) == tile
    return tiles.Tile(tile, nside, margin_deg, pix, in_tile, maps, path="synthetic")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tile", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2, help="TensorFlow threads")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/mmf_vs_unet.md"))
    args = ap.parse_args()

    import tensorflow as tf

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(config, ROOT / "config/schema.yaml")
    cl = config["clusters"]
    streams = inference.resolve_streams(cl["detect"]["streams"], args.threads)
    inference.configure_threads(args.threads, streams)
    nside_map = int(config["planck"]["nside"])
    seed = [int(config["seed"]), 6, args.tile]

    # ---- MMF: run_tile end to end on a synthetic tile
    cfg = mmf.MMFConfig.from_config(dict(cl["mmf"]), config["planck"]["bands"])
    t0 = time.perf_counter()
    tile = synthetic_tile(
        args.tile, nside_map, cfg.bands, tiles.mmf_margin_deg(cfg.patch_size, cfg.pixel_arcmin, nside_map), seed
    )
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = mmf.run_tile(tile, cfg, workers=args.threads)
    t_mmf = time.perf_counter() - t0
    null_rms = float(np.std(res.snr[0]))

    # ---- U-Net: the cover of the same tile (all bands), inference, combination, detection
    bands = [str(b) for b in config["planck"]["bands"]]
    pcfg = patches.PatchConfig.from_config(bands, cl["patch"], cl["mask"])
    size, pix_arcmin = pcfg.size, pcfg.pixel_arcmin
    batch = int(cl["detect"]["batch_size"])
    precision = inference.resolve_precision(cl["detect"]["precision"])
    margin = tiles.cluster_margin_deg(size, pix_arcmin, 0.0, nside_map)
    utile = synthetic_tile(args.tile, nside_map, bands, max(margin, tile.margin_deg), seed)
    nside_pred = prediction_nside(pix_arcmin, cl["detect"]["nside"])
    t0 = time.perf_counter()
    _, chunks = patches.cover_chunks(utile, Table({"GLON": [0.0], "GLAT": [0.0]}), pcfg, 0)
    ps = patches.collect(chunks, pcfg)
    index = patches.cover_index(utile, pcfg, nside_pred)
    t_cut = time.perf_counter() - t0
    n_cover = len(ps)
    stats = normalise.fit(ps.inputs[:256], bands)
    model = build_model((size, size, len(bands)), cl["model"], policy=inference.POLICIES[precision])
    predictor = inference.CompiledPredictor(model, batch, streams=streams)
    predictor(ps.inputs[:batch])  # trace the step once
    t0 = time.perf_counter()
    prob = predictor(normalise.apply(ps.inputs, stats, bands))
    t_inf = time.perf_counter() - t0
    rate = n_cover / t_inf
    t0 = time.perf_counter()
    mean, count = cover.combine(prob, index)
    t_comb = time.perf_counter() - t0
    seen = count > 0
    dp = DetectParams(**{k: cl["detect"][k] for k in ("threshold", "min_pixels",
                                                      "max_radius_arcmin", "centre")})  # fmt: skip
    t0 = time.perf_counter()
    find_detections(index.pixels[seen], mean[seen], nside_pred, dp, args.tile)
    t_det = time.perf_counter() - t0
    unet_tile = t_inf + t_comb + t_det
    red = cover.cover_redundancy(n_cover, size, pix_arcmin, nside_map, args.tile)

    arch = cl["model"]["architecture"]
    rows = [
        ("MMF patches / tile", f"{len(res.centres)}", f"{cfg.patch_size}x{cfg.patch_size} px of "
         f"{cfg.pixel_arcmin}', centres on nside {res.nside_centres}"),
        ("**MMF time / tile**", f"**{t_mmf:.1f} s**", f"run_tile end to end, {len(cfg.bands)} "
         f"bands, {len(cfg.theta500_arcmin)} theta500 bins, {args.threads} FFT threads"),
        ("MMF detections in noise", f"{len(res.detections)}", f"S/N >= {cfg.snr_threshold} "
         f"(no clusters injected); S/N rms {null_rms:.3f} (theta500 {cfg.theta500_arcmin[0]}')"),
        ("U-Net cover patches / tile", f"{n_cover}", f"cover_margin {pcfg.cover_margin} px: "
         f"{red:.2f}x a tiling; cut + index {t_cut:.1f} s (cut_cover, not counted)"),
        ("U-Net inference", f"{t_inf:.1f} s ({rate:.0f} patches/s)", f"{arch} "
         f"{cl['model']['filter_num']}, {size}x{size}x{len(bands)}, batch {batch}, {precision}, "
         f"every cover patch"),
        ("U-Net combination on the sphere", f"{t_comb:.2f} s", f"nside {nside_pred}, cached index"),
        ("U-Net detection extraction", f"{t_det:.2f} s", "threshold "
         f"{cl['detect']['threshold']}"),
        ("**U-Net time / tile**", f"**{unet_tile:.1f} s**", "inference + combination + "
         "detection"),
        ("**ratio MMF / U-Net**", f"**{t_mmf / unet_tile:.2f}**", "> 1: the U-Net is faster"),
    ]  # fmt: skip
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# One tile on CPU: matched multi-frequency filter vs U-Net inference",
        "",
        f"`python benchmarks/mmf_vs_unet.py --tile {args.tile} "
        f"--threads {args.threads}` on {cpu} ({platform.system()}), nside {nside_map}, "
        f"TensorFlow {tf.__version__}; untrained network of the default architecture. "
        f"Synthetic tile built in {t_sim:.1f} s (not counted). Load average at the end: "
        f"{load:.1f} (machine shared with other jobs: compare the ratio, not the seconds).",
        "",
        "| quantity | value | notes |",
        "| --- | --- | --- |",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
