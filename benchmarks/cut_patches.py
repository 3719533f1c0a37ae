"""Benchmark of patch cutting (rule cut_patches / cut_cover) at the Planck resolution.

Measures, on synthetic nside-2048 maps (7 bands, 64 x 64 patches of 1.7'):

1. patches per CPU-second (per core) of ``Tile.cut_patches`` (vectorised, nearest and bilinear),
   against a loop of ``healpy.gnomview(return_projected_map=True, no_plot=True)`` and a loop of
   ``reproject.reproject_from_healpix`` (nearest) on the same full-sky map (ratios);
2. peak memory (VmHWM) of one tile job at nside 2048 (a fresh process that reads a tile file,
   cuts its cover grid and ~2000 augmented training patches, and writes them);
3. the speed-up of the per-tile stage with 2 worker processes over 1 (a process pool over
   tiles, as Snakemake with --cores 2 would run two tile jobs at once; wall-clock, so only
   meaningful on an otherwise idle machine: the load average is printed with the table).

Run:  python benchmarks/cut_patches.py [--quick]
Writes benchmarks/results/cut_patches.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import healpy as hp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skydetect.geometry import projection, tiles  # noqa: E402

HERE = Path(__file__).resolve().parent
NSIDE = 2048
SIZE, PIX = 64, 1.7
BANDS = ["100", "143", "217", "353", "545", "857", "y"]
TILE = 6
MAX_SHIFT = 30


def make_tile_file(path, tile=TILE, nside=NSIDE, seed=0):
    margin = tiles.cluster_margin_deg(SIZE, PIX, MAX_SHIFT, nside)
    pix = tiles.tile_margin_pixels(nside, tile, margin)
    rng = np.random.default_rng([seed, tile])
    maps = {b: rng.normal(size=pix.size).astype(np.float32) for b in BANDS}
    tiles.write_tile(path, tile, nside, margin, pix, tiles.tile_of_pixels(nside, pix) == tile, maps)
    return path


def centres_in_tile(n, tile=TILE, seed=1):
    rng = np.random.default_rng(seed)
    l0, b0 = hp.pix2ang(2, tile, lonlat=True)
    out_l, out_b = [], []
    while len(out_l) < n:
        g = l0 + rng.uniform(-12, 12, 4 * n)
        b = np.clip(b0 + rng.uniform(-12, 12, 4 * n), -89, 89)
        ok = tiles.tile_of(g, b) == tile
        out_l += list(g[ok] % 360)
        out_b += list(b[ok])
    return np.array(out_l[:n]), np.array(out_b[:n])


def rate(fn, n, repeat=3):
    """Patches per CPU-second of this (single-threaded) process: a per-core rate that other
    jobs on the machine do not dilute (best of ``repeat``)."""
    best = np.inf
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return n / best


def bench_speed(tile_path, n_vec, n_loop):
    tl = tiles.read_tile(tile_path)
    gl, gb = centres_in_tile(n_vec)
    ang = np.random.default_rng(2).uniform(0, 360, n_vec)
    tl.cut_patches(gl[:8], gb[:8], BANDS, SIZE, PIX)  # warm-up (lookup table)
    r_near = rate(lambda: tl.cut_patches(gl, gb, BANDS, SIZE, PIX, ang), n_vec)
    r_bil = rate(
        lambda: tl.cut_patches(gl, gb, BANDS, SIZE, PIX, ang, sampling="bilinear"), n_vec, repeat=1
    )
    # peers need the full-sky map: one band at nside 2048, values placed at the tile pixels
    full = np.zeros(hp.nside2npix(NSIDE), np.float32)
    full[tl.pixels] = tl.maps["100"]
    lg, lb = gl[:n_loop], gb[:n_loop]

    def gnom():
        for g, b in zip(lg, lb, strict=True):
            for _ in BANDS:  # one call per band, as the peers would do for 7 maps
                hp.gnomview(
                    full,
                    rot=(g, b, 0),
                    xsize=SIZE,
                    ysize=SIZE,
                    reso=PIX,
                    return_projected_map=True,
                    no_plot=True,
                )
        plt.close("all")

    from reproject import reproject_from_healpix

    def repro():
        for g, b in zip(lg, lb, strict=True):
            w = projection.patch_wcs(g, b, SIZE, PIX)
            for _ in BANDS:
                reproject_from_healpix(
                    (full, "galactic"),
                    w,
                    shape_out=(SIZE, SIZE),
                    order="nearest-neighbor",
                    nested=False,
                )

    r_gnom = rate(gnom, n_loop, repeat=1)
    r_repro = rate(repro, n_loop, repeat=1)
    # agreement with the peers (nearest): identical values
    p = tl.cut_patches(lg[:3], lb[:3], ["100"], SIZE, PIX)[..., 0]
    ref = np.stack(
        [
            reproject_from_healpix(
                (full, "galactic"),
                projection.patch_wcs(g, b, SIZE, PIX),
                shape_out=(SIZE, SIZE),
                order="nearest-neighbor",
                nested=False,
            )[0]
            for g, b in zip(lg[:3], lb[:3], strict=True)
        ]
    )
    agree = float(np.max(np.abs(p - ref)))
    return {
        "nearest": r_near,
        "bilinear": r_bil,
        "gnomview": r_gnom,
        "reproject": r_repro,
        "max_abs_diff_vs_reproject": agree,
    }


JOB = r"""
import sys, time, json


def hwm_mb():  # peak RSS of this process (VmHWM: reset at exec, unlike ru_maxrss)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

import numpy as np
from astropy.table import Table
from skydetect.clusters import patches as P
from skydetect.clusters.patch_files import write_patches
from skydetect.geometry import tiles
t0 = time.perf_counter()
tl = tiles.read_tile(sys.argv[1])
rng = np.random.default_rng(0)
l0, b0 = __import__("healpy").pix2ang(2, tl.tile, lonlat=True)
cat = Table({"GLON": (l0 + rng.uniform(-10, 10, 300)) % 360,
             "GLAT": np.clip(b0 + rng.uniform(-10, 10, 300), -89, 89),
             "THETA500": np.full(300, 5.0)})
cfg = P.PatchConfig(bands=tl.bands, size=64, pixel_arcmin=1.7, loops=int(sys.argv[3]),
                    max_shift_px=30)
kind = sys.argv[2]
if kind == "cover":
    attrs, chunks = P.cover_chunks(tl, cat, cfg, seed=0)
else:
    attrs, chunks = P.training_chunks(tl, cat, cfg, "train", list(range(48)), seed=0)
n = write_patches(sys.argv[4], chunks, cfg, attrs)  # as scripts/cut_patches.py: streamed
print(json.dumps({"n": n, "seconds": time.perf_counter() - t0,
                  "maxrss_mb": hwm_mb()}))
"""


def tile_job(tile_path, kind, loops, out):
    res = subprocess.run(
        [sys.executable, "-c", JOB, str(tile_path), kind, str(loops), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def _pool_job(args):
    return tile_job(*args)


def bench_cores(paths, tmp, loops, repeat=2):
    """Wall time of the tile jobs with 1 and 2 workers (best of ``repeat``, interleaved)."""
    jobs = [(p, "train", loops, Path(tmp) / f"out_{i}.h5") for i, p in enumerate(paths)]
    times = {1: np.inf, 2: np.inf}
    for _ in range(repeat):
        for workers in (1, 2):
            t = time.perf_counter()
            with ProcessPoolExecutor(workers) as ex:
                list(ex.map(_pool_job, jobs))
            times[workers] = min(times[workers], time.perf_counter() - t)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer patches (a smoke run)")
    args = ap.parse_args()
    n_vec, n_loop, loops, n_tiles = (256, 3, 1, 2) if args.quick else (2000, 20, 4, 4)
    with tempfile.TemporaryDirectory() as tmp:
        t6 = make_tile_file(Path(tmp) / "6.h5")
        speed = bench_speed(t6, n_vec, n_loop)
        cover = tile_job(t6, "cover", 1, Path(tmp) / "cover.h5")
        train = tile_job(t6, "train", 7, Path(tmp) / "train.h5")
        paths = [make_tile_file(Path(tmp) / f"{t}.h5", tile=t) for t in (20, 21, 22, 23)[:n_tiles]]
        cores = bench_cores(paths, tmp, loops)
    speedup = cores[1] / cores[2]
    rows = [
        (
            "patches per CPU-s (per core), 64x64x7 nearest (this)",
            f"{speed['nearest']:.0f}",
            ">= 1000",
        ),
        ("patches per CPU-s (per core), 64x64x7 bilinear (this)", f"{speed['bilinear']:.0f}", ""),
        ("patches per CPU-s, healpy.gnomview loop (7 calls/patch)", f"{speed['gnomview']:.2f}", ""),
        (
            "patches per CPU-s, reproject_from_healpix loop (7 calls/patch)",
            f"{speed['reproject']:.2f}",
            "",
        ),
        ("ratio nearest / gnomview", f"{speed['nearest'] / speed['gnomview']:.0f}x", ">= 50x"),
        ("ratio nearest / reproject", f"{speed['nearest'] / speed['reproject']:.0f}x", ""),
        ("max |this - reproject| (nearest)", f"{speed['max_abs_diff_vs_reproject']:.1e}", "0"),
        (
            f"tile job (cover grid, {cover['n']} patches): peak RSS MB",
            f"{cover['maxrss_mb']:.0f}",
            "<= 1024",
        ),
        (
            f"tile job (training, {train['n']} patches): peak RSS MB",
            f"{train['maxrss_mb']:.0f}",
            "<= 1024",
        ),
        (f"per-tile stage, {n_tiles} tile jobs: 1 worker [s]", f"{cores[1]:.1f}", ""),
        (f"per-tile stage, {n_tiles} tile jobs: 2 workers [s]", f"{cores[2]:.1f}", ""),
        ("speed-up 2 workers / 1", f"{speedup:.2f}", ">= 1.7"),
    ]
    load = os.getloadavg()
    lines = [
        "# cut_patches benchmark",
        "",
        f"nside {NSIDE}, {len(BANDS)} bands, {SIZE}x{SIZE} patches of {PIX}', tile {TILE}; "
        f"{os.cpu_count()} CPU cores, load average at the end {load[0]:.1f} "
        "(other jobs on the machine slow every number here).",
        "`python benchmarks/cut_patches.py" + (" --quick" if args.quick else "") + "`",
        "",
        "| quantity | value | target |",
        "| --- | --- | --- |",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = HERE / "results" / "cut_patches.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
