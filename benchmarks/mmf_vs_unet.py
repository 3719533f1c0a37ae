"""Benchmark: the whole MMF over one tile (rule mmf_tile) beside U-Net inference per tile.

For the default configuration (config/config.yaml):

* MMF: wall time of ``skydetect.clusters.mmf.run_tile`` end to end (patch sampling from the
  tile file, noise spectra, filtering for every theta500, peaks, de-duplication, S/N map on
  the tile's HEALPix pixels) on a synthetic tile at ``planck.nside``: white noise at the
  instrument levels plus a CMB-like red component common to all bands; single-threaded numpy;
* U-Net: an untrained network of the default architecture (inference cost does not depend
  on the weights) on the tile's cover patches: inference rate timed on ``--patches`` patches
  and extrapolated to the number of cover patches, plus projecting them onto HEALPix pixels
  and averaging on the sphere (``skydetect.clusters.predict``), with ``--threads`` threads.

Prints a table with the ratio and writes it to benchmarks/results/mmf_vs_unet.md.

    python benchmarks/mmf_vs_unet.py [--tile 6] [--patches 256] [--threads 2]
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
from skydetect.clusters.models import build_model
from skydetect.clusters.predict import (
    combine_on_sphere,
    patch_pixels,
    predict_patches,
    prediction_nside,
)
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
    ap.add_argument("--patches", type=int, default=256, help="U-Net patches timed")
    ap.add_argument("--threads", type=int, default=2, help="TensorFlow threads")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/mmf_vs_unet.md"))
    args = ap.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(config, ROOT / "config/schema.yaml")
    cl = config["clusters"]
    nside_map = int(config["planck"]["nside"])
    seed = [int(config["seed"]), 6, args.tile]

    # ---- MMF: run_tile end to end on a synthetic tile
    cfg = mmf.MMFConfig.from_config(dict(cl["mmf"]), config["planck"]["bands"])
    t0 = time.perf_counter()
    tile = synthetic_tile(
        args.tile, nside_map, cfg.bands, mmf.required_margin_deg(cfg, nside_map), seed
    )
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = mmf.run_tile(tile, cfg)
    t_mmf = time.perf_counter() - t0
    null_rms = float(np.std(res.snr[0]))

    # ---- U-Net: cover patches of the same tile, inference rate, combination on the sphere
    bands = [str(b) for b in config["planck"]["bands"]]
    size, pix_arcmin = int(cl["patch"]["size"]), float(cl["patch"]["pixel_arcmin"])
    batch = int(cl["detect"]["batch_size"])
    glon, glat = patches.cover_centres(
        nside_map,
        tiles.tile_pixels(nside_map, args.tile),
        size,
        pix_arcmin,
        float(cl["patch"]["cover_overlap"]),
    )
    n_cover = len(glon)
    rng = np.random.default_rng(seed)
    model = build_model((size, size, len(bands)), cl["model"])
    x = rng.normal(size=(args.patches, size, size, len(bands))).astype(np.float32)
    predict_patches(model, x[:batch], batch)  # warm-up (graph building)
    t0 = time.perf_counter()
    prob = predict_patches(model, x, batch)
    rate = args.patches / (time.perf_counter() - t0)
    nside_pred = prediction_nside(pix_arcmin, cl["detect"]["nside"])
    reps = np.resize(np.arange(args.patches), n_cover)
    t0 = time.perf_counter()
    pix = patch_pixels(glon, glat, np.zeros(n_cover), np.zeros(n_cover, bool), size, pix_arcmin,
                       nside_pred)  # fmt: skip
    combine_on_sphere(prob[reps], pix, nside_pred, args.tile)
    t_comb = time.perf_counter() - t0
    unet_tile = n_cover / rate + t_comb

    arch = cl["model"]["architecture"]
    rows = [
        ("MMF patches / tile", f"{len(res.centres)}", f"{cfg.patch_size}x{cfg.patch_size} px of "
         f"{cfg.pixel_arcmin}', centres on nside {res.nside_centres}"),
        ("**MMF time / tile**", f"**{t_mmf:.1f} s**", f"run_tile end to end, {len(cfg.bands)} "
         f"bands, {len(cfg.theta500_arcmin)} theta500 bins, 1 thread"),
        ("MMF detections in noise", f"{len(res.detections)}", f"S/N >= {cfg.snr_threshold} "
         f"(no clusters injected); S/N rms {null_rms:.3f} (theta500 {cfg.theta500_arcmin[0]}')"),
        ("U-Net inference", f"{rate:.1f} patches/s", f"{arch} {cl['model']['filter_num']}, "
         f"{size}x{size}x{len(bands)}, batch {batch}, {args.patches} timed"),
        ("U-Net cover patches / tile", f"{n_cover}",
         f"cover_overlap {cl['patch']['cover_overlap']}"),
        ("U-Net combine on the sphere", f"{t_comb:.1f} s", f"nside {nside_pred}"),
        ("**U-Net time / tile**", f"**{unet_tile:.1f} s**", "inference + combination "
         "(detection extraction not included)"),
        ("**ratio MMF / U-Net**", f"**{t_mmf / unet_tile:.2f}**", "> 1: the U-Net is faster"),
    ]  # fmt: skip
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# One tile on CPU: matched multi-frequency filter vs U-Net inference",
        "",
        f"`python benchmarks/mmf_vs_unet.py --tile {args.tile} --patches {args.patches} "
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
