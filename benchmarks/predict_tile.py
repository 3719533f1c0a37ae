"""Benchmark: U-Net inference over one tile on CPU, against the MMF (the peer method).

Measures, for the default configuration (config/config.yaml: untrained network of the
default architecture, 64 x 64 patches of 1.7', the bands of planck.bands, nside 1024 maps,
cover_overlap of clusters.patch):

* U-Net: patches per second of inference (batch ``clusters.detect.batch_size``), the number
  of cover patches of a tile, the time to combine their predictions on the sphere and to
  extract the detections, hence the time per tile;
* MMF: seconds per filtered patch (``skydetect.clusters.mmf.filter_patch`` on noise maps, the
  configured patch size and theta500 grid) and its number of patches per tile, hence its time
  per tile;

and prints a table (also written to benchmarks/results/predict_tile.md) with the ratio.

    python benchmarks/predict_tile.py [--patches 256] [--tile 6] [--threads 2]
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

import skydetect  # noqa: F401  (legacy Keras before TensorFlow)
from skydetect.clusters import mmf, patches
from skydetect.clusters.detect import DetectParams, find_detections
from skydetect.clusters.models import build_model
from skydetect.clusters.predict import (
    combine_on_sphere,
    patch_pixels,
    predict_patches,
    prediction_nside,
)
from skydetect.config import validate_config
from skydetect.geometry import tiles
from skydetect.sky.instrument import channel

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, repeat=1):
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patches", type=int, default=256, help="patches timed for inference")
    ap.add_argument("--tile", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mmf-patches", type=int, default=10, help="MMF patches timed")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/predict_tile.md"))
    args = ap.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(config, ROOT / "config/schema.yaml")
    cl = config["clusters"]
    bands = [str(b) for b in config["planck"]["bands"]]
    size, pix_arcmin = int(cl["patch"]["size"]), float(cl["patch"]["pixel_arcmin"])
    nside_map = int(config["planck"]["nside"])
    batch = int(cl["detect"]["batch_size"])
    rng = np.random.default_rng([config["seed"], 5, args.tile])

    # ---- U-Net: cover patches of the tile, inference rate, combination, detection
    tile_pix = tiles.tile_pixels(nside_map, args.tile)
    glon, glat = patches.cover_centres(
        nside_map, tile_pix, size, pix_arcmin, float(cl["patch"]["cover_overlap"])
    )
    n_cover = len(glon)
    model = build_model((size, size, len(bands)), cl["model"])
    x = rng.normal(size=(args.patches, size, size, len(bands))).astype(np.float32)
    predict_patches(model, x[:batch], batch)  # warm-up (graph building)
    t_inf, _ = _timed(lambda: predict_patches(model, x, batch))
    rate = args.patches / t_inf

    nside = prediction_nside(pix_arcmin, cl["detect"]["nside"])
    angle = rng.uniform(0, 360, n_cover)
    flip = rng.random(n_cover) < 0.5
    prob = rng.uniform(0, 0.5, size=(n_cover, size, size)).astype(np.float32)
    prob[:, 28:36, 28:36] = 0.95  # one blob per patch: detections to extract
    t_pix, pix = _timed(lambda: patch_pixels(glon, glat, angle, flip, size, pix_arcmin, nside))
    t_comb, pmap = _timed(lambda: combine_on_sphere(prob, pix, nside, args.tile))
    params = DetectParams(**{k: cl["detect"][k] for k in ("threshold", "min_pixels",
                                                          "max_radius_arcmin", "centre")})  # fmt: skip
    t_det, det = _timed(lambda: find_detections(pmap.pixels, pmap.prob, nside, params, args.tile))
    unet_tile = n_cover / rate + t_pix + t_comb + t_det

    # ---- MMF: seconds per patch and patches per tile
    cfg = mmf.MMFConfig.from_config(dict(cl["mmf"]), bands)
    nc = mmf.centre_nside(cfg)
    n_mmf = int(np.sum(tiles.tile_of_pixels(nc, np.arange(hp.nside2npix(nc))) == args.tile))
    fwhm = [channel(b).fwhm_arcmin for b in cfg.bands]
    tsz = [channel(b).tsz_per_y for b in cfg.bands]
    maps = rng.normal(size=(args.mmf_patches, len(cfg.bands), cfg.patch_size, cfg.patch_size))
    window = mmf.apodisation_window(cfg.patch_size, cfg.apodisation_px)

    def run_mmf():
        for m in maps:
            mmf.filter_patch(
                m, cfg.pixel_arcmin, fwhm, tsz, cfg.theta500_arcmin, window=window,
                pixwin_nside=nside_map if cfg.pixel_window else None, profile=cfg.profile,
                truncation=cfg.truncation_r500, min_modes=cfg.spectrum_min_modes,
                smooth_bins=cfg.spectrum_smooth_bins, subtract_snr=cfg.subtract_snr,
            )  # fmt: skip

    run_mmf()  # warm-up (profile tables are cached)
    t_mmf, _ = _timed(run_mmf)
    mmf_patch = t_mmf / args.mmf_patches
    mmf_tile = n_mmf * mmf_patch

    arch = cl["model"]["architecture"]
    rows = [
        ("U-Net inference", f"{rate:.1f} patches/s", f"{arch} {cl['model']['filter_num']}, "
         f"{size}x{size}x{len(bands)}, batch {batch}, {args.patches} patches timed"),
        ("U-Net cover patches / tile", f"{n_cover}", f"tile {args.tile}, nside {nside_map}, "
         f"cover_overlap {cl['patch']['cover_overlap']}"),
        ("U-Net inference / tile", f"{n_cover / rate:.1f} s", "patches / rate"),
        ("patch -> HEALPix pixels", f"{t_pix:.2f} s", f"nside {nside} ({n_cover} patches)"),
        ("combine on the sphere", f"{t_comb:.2f} s", f"{pmap.pixels.size} pixels"),
        ("extract detections", f"{t_det:.2f} s", f"{len(det)} detections"),
        ("**U-Net time / tile**", f"**{unet_tile:.1f} s**", "sum of the above"),
        ("MMF time / patch", f"{1000 * mmf_patch:.1f} ms", f"{cfg.patch_size}x{cfg.patch_size}x"
         f"{len(cfg.bands)}, {len(cfg.theta500_arcmin)} theta500, {args.mmf_patches} timed"),
        ("MMF patches / tile", f"{n_mmf}", f"centres on nside {nc}"),
        ("**MMF time / tile**", f"**{mmf_tile:.1f} s**", "patches x time per patch"),
        ("**ratio MMF / U-Net per tile**", f"**{mmf_tile / unet_tile:.2f}**",
         "> 1: the U-Net is faster"),
    ]  # fmt: skip
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0]
    lines = [
        "# Cluster inference per tile on CPU: U-Net vs MMF",
        "",
        f"`python benchmarks/predict_tile.py --patches {args.patches} --tile {args.tile} "
        f"--threads {args.threads}` on {cpu}, {args.threads} threads, TensorFlow "
        f"{tf.__version__}, load average {load:.1f} at the end; untrained network (inference cost "
        "does not depend on the weights). Timings scale with the machine's load: compare the ratio.",
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
