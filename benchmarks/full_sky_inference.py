"""Benchmark: the whole sky (48 tiles at nside 2048) through U-Net inference and combination,
measured against the machine's own peak.

* U-Net: the default architecture (config/config.yaml ``clusters.model``; random weights, the
  cost does not depend on them) on the sparse cover of every tile (``clusters.patch``:
  64 x 1.7' patches, ``cover_margin``). Tiles come in four shapes (HEALPix rings 1-4 of
  nside 2; the others are rotations or mirror images), so the cover and its combination index
  are built for tiles 0, 4, 12, 20 and every tile uses the one of its ring. The timed part is
  what ``predict_tile`` does per tile once the cover file exists: inference of all its patches
  (the compiled step, fixed batch) and the combination on the sphere (one ``bincount``
  through the cached index). Inputs are synthetic normal deviates.
* Efficiency: achieved GFLOP/s (2 x the model's multiply-accumulates per patch, counted layer
  by layer, x patches / inference seconds) over the machine's peak: the faster of two
  2048 x 2048 float32 matmuls timed in the same process after every tile, each at its mean
  rate over the same period, so that the inference and its peak see the same load of a
  shared machine. The two are the two ways of using the cores: numpy's BLAS (OpenBLAS) on
  ``--threads`` threads, one op on every core; and TensorFlow's matmul run as the inference
  runs, ``--streams`` at a time (``clusters.detect.streams``; one per thread by default),
  each on threads / streams cores. Which is faster depends on the CPU (two cores that share
  a physical core run one two-thread matmul faster than two one-thread ones), so neither
  alone is the peak. The interval is a 68 % bootstrap over the tiles. One TensorFlow matmul
  on all the threads, in a separate process before and after, is reported beside them.
  bfloat16 is also run (compute on the CPU's AVX512-BF16 / AMX units) where oneDNN has
  bfloat16 kernels (not under ``--isa avx2``): its ratio to the float32 peak can exceed 1;
  its ratio to a bfloat16 matmul is reported too.
* MMF: seconds per tile of ``skydetect.clusters.mmf.run_tile`` on a synthetic nside-2048 tile
  (six frequency bands of white noise, the default ``clusters.mmf``), patch batches on
  ``--threads`` threads; the best of two runs.
* Bubble windows per second: the library's field preprocessing
  (``skydetect.bubbles.preprocess.preprocess_windows``, as it is at run time) over the sliding
  windows of a synthetic 3-channel field of the default size.

    python benchmarks/full_sky_inference.py [--threads 2] [--streams 2] [--precision float32]
        [--tiles 48] [--isa native|avx2|both]

``--isa`` runs it in a fresh process with oneDNN and OpenBLAS limited to that instruction set
(``avx2``: ``ONEDNN_MAX_CPU_ISA=AVX2``, ``OPENBLAS_CORETYPE=Haswell``, as on a CPU without
AVX-512; ``native``: the CPU's full ISA; ``both``: one run each).

Writes benchmarks/results/full_sky_inference.md; the last printed line is
``full-sky: <seconds> s, efficiency <ratio>, mmf <seconds> s/tile`` (U-Net inference plus
combination of the 48 tiles at ``--precision``, its efficiency, the MMF per tile). With
``--tiles N`` below 48 the seconds are the whole sky extrapolated from the N tiles (inference
in proportion to the patches, combination to the tiles), labelled so:
``full-sky: <seconds> s extrapolated from N tiles (<seconds> s measured), ...``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

import skydetect  # noqa: F401  (legacy Keras before TensorFlow)
from skydetect import perf
from skydetect.bubbles.scales import window_sizes
from skydetect.clusters import cover, inference, mmf
from skydetect.clusters.models import build_model
from skydetect.clusters.predict import prediction_nside
from skydetect.config import validate_config
from skydetect.geometry import tiles
from skydetect.perf import blas_matmul_timer, matmul_gflops, matmul_timer

ROOT = Path(__file__).resolve().parents[1]
NSIDE = 2048
RING_OF_TILE = {t: (0 if t < 4 else 4 if t < 12 else 12 if t < 20 else 20) for t in range(28)}
RING_OF_TILE.update({t: RING_OF_TILE[47 - t] for t in range(28, 48)})  # north-south mirror


def matmul_gflops_apart(threads: int, repeats: int = 8) -> float:
    """GFLOP/s of one 2048² float32 matmul on ``threads`` threads per op, in a separate process
    (the threading of one stream per process, which this process no longer has)."""
    code = (
        "import time, skydetect, tensorflow as tf\n"
        f"tf.config.threading.set_intra_op_parallelism_threads({threads})\n"
        "tf.config.threading.set_inter_op_parallelism_threads(1)\n"
        "a = tf.random.normal((2048, 2048)); f = tf.function(lambda x: tf.matmul(x, x))\n"
        "f(a).numpy(); t = time.perf_counter()\n"
        f"for _ in range({repeats}): f(a).numpy()\n"
        f"print(2 * 2048**3 * {repeats} / (time.perf_counter() - t) / 1e9)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def sky_inference(
    model, covers, batch: int, inputs_for, n_tiles: int = 48, peers=(), streams: int = 1
) -> dict:
    """Inference + combination of the tiles (all 48 by default); predict_tile's work. Each
    of ``peers`` (:func:`matmul_timer`, :func:`blas_matmul_timer`) times a matmul after every
    tile: ``tiles`` holds, per tile, the patches, the inference seconds and each peer's FLOP
    and seconds; ``peaks`` each peer's mean GFLOP/s over the same period."""
    pred = inference.CompiledPredictor(model, batch, streams=streams)
    pred(inputs_for(batch))  # trace the step once
    t_comb = 0.0
    tiles_run = []
    for t in range(n_tiles):
        index = covers[RING_OF_TILE[t]]
        x = inputs_for(index.n_patches)
        t0 = time.perf_counter()
        prob = pred(x)
        t1 = time.perf_counter()
        cover.combine(prob, index)
        t_comb += time.perf_counter() - t1
        tiles_run.append([len(x), t1 - t0, *(v for peer in peers for v in peer())])
    tiles_run = np.array(tiles_run, dtype=float)
    return dict(
        t_inf=tiles_run[:, 1].sum(),
        t_comb=t_comb,
        n=int(tiles_run[:, 0].sum()),
        peaks=peak_gflops(tiles_run),
        tiles=tiles_run,
    )


def peak_gflops(tiles_run) -> np.ndarray:
    """Each peer's GFLOP/s over the tiles of ``tiles_run``: its total FLOP over its total
    seconds."""
    return tiles_run[:, 2::2].sum(0) / tiles_run[:, 3::2].sum(0) / 1e9


def efficiency(tiles_run, macs: int) -> float:
    """Achieved GFLOP/s over all the tiles over the peak: the faster of the peers' matmuls,
    timed between the same tiles."""
    n, t_inf = tiles_run[:, 0], tiles_run[:, 1]
    return float(2 * macs * n.sum() / t_inf.sum() / 1e9 / peak_gflops(tiles_run).max())


def efficiency_interval(tiles_run, macs: int, seed: int = 0, draws: int = 2000):
    """68 % interval of :func:`efficiency` from a bootstrap over tiles (each tile's inference
    paired with the matmuls timed after it, so a tile slowed by the machine's other load is
    compared with matmuls slowed alike), and the lowest and highest of a single tile."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(tiles_run), size=(draws, len(tiles_run)))
    draws_eff = [efficiency(tiles_run[p], macs) for p in pick]
    single = [efficiency(tiles_run[i : i + 1], macs) for i in range(len(tiles_run))]
    return (*np.percentile(draws_eff, [16, 84]), min(single), max(single))


def mmf_tile_seconds(cfg_mmf: dict, bands, threads: int, repeats: int = 2) -> tuple[float, int]:
    cfg = mmf.MMFConfig.from_config(dict(cfg_mmf), bands)
    margin = tiles.mmf_margin_deg(cfg.patch_size, cfg.pixel_arcmin, NSIDE)
    pix = tiles.tile_margin_pixels(NSIDE, 6, margin)
    rng = np.random.default_rng(0)
    maps = {b: rng.normal(size=pix.size).astype(np.float32) for b in cfg.bands}
    tile = tiles.Tile(6, NSIDE, margin, pix, tiles.tile_of_pixels(NSIDE, pix) == 6, maps)
    best = np.inf
    for _ in range(repeats):  # the best of a few: a shared machine only ever slows it down
        t0 = time.perf_counter()
        res = mmf.run_tile(tile, cfg, workers=threads)
        best = min(best, time.perf_counter() - t0)
    return best, len(res.centres)


def bubble_windows_rate(config: dict, threads: int) -> tuple[str, str]:
    try:
        from skydetect.bubbles import preprocess, windows

        bub = config["bubbles"]
        sim = bub.get("simulate", {})
        pix = float(sim.get("pixel_arcsec", 8.0))
        w = int(round(float(sim.get("width_deg", 3.0)) * 3600 / pix))
        h = int(round(float(sim.get("height_deg", 2.0)) * 3600 / pix))
        rng = np.random.default_rng(3)
        image = rng.lognormal(0.0, 0.5, size=(3, h, w)).astype(np.float32)
        sizes = windows.sizes_to_pixels(window_sizes(bub)[0], pix, (h, w))
        sx, sy, ss = windows.sliding_windows((h, w), sizes, bub["windows"]["stride_fraction"])
        pp = dict(bub.get("preprocess", {}))
        t0 = time.perf_counter()
        preprocess.preprocess_windows(image, sx, sy, ss, threads=threads, **pp)
        dt = time.perf_counter() - t0
        return f"{len(sx) / dt:.0f}", f"{len(sx)} sliding windows of a {w} x {h} px field"
    except Exception as err:  # another stage's API: report, do not fail the benchmark
        return "n/a", f"preprocess_windows failed: {type(err).__name__}: {err}"


def bf16_note(runs: dict, peer: int) -> str:
    if "bfloat16" not in runs:
        return ""
    return f"{runs['bfloat16']['peaks'][peer]:.0f} with the bfloat16 one; "


def isa_note(label: str | None) -> str:
    """What the run's oneDNN and OpenBLAS were limited to."""
    limits = ", ".join(f"{k}={os.environ[k]}" for k in perf.ISA_ENV["avx2"] if k in os.environ)
    head = label or "as the environment set it"
    limits = limits or "no limit: the CPU's full ISA"
    return f"{head} ({limits}), on {perf.cpu_name()}"


def run_per_isa(args) -> None:
    """This benchmark again in a fresh process per instruction set of ``--isa`` (the
    variables are read when oneDNN and OpenBLAS load); their output passes through."""
    isas = perf.isa_list(args.isa)
    for isa in isas:
        out = Path(args.out)
        if len(isas) > 1:
            out = out.with_name(f"{out.stem}_{isa}{out.suffix}")
        cmd = [sys.executable, __file__, "--threads", str(args.threads), "--tiles", str(args.tiles)]
        for key in ("streams", "precision"):
            if getattr(args, key) is not None:
                cmd += [f"--{key}", str(getattr(args, key))]
        cmd += ["--out", str(out), "--isa-label", isa]
        print(f"[full_sky_inference] {isa}: {out}", flush=True)
        subprocess.run(cmd, env=perf.isa_environment(isa), check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--streams", type=int, default=None, help="default: clusters.detect.streams")
    ap.add_argument("--precision", default=None, help="default: clusters.detect.precision")
    ap.add_argument("--tiles", type=int, default=48, help="fewer: a quick check, not the sky")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/full_sky_inference.md"))
    ap.add_argument(
        "--isa",
        choices=(*perf.ISAS, "both"),
        default=None,
        help="run in a fresh process with oneDNN and OpenBLAS limited to this instruction set "
        "(avx2: ONEDNN_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell; both: one run each, "
        "written to <out>_<isa>.md); default: this process, as its environment has it",
    )
    ap.add_argument("--isa-label", default=None, help=argparse.SUPPRESS)  # set by --isa
    args = ap.parse_args()
    if args.isa:
        run_per_isa(args)
        return

    import tensorflow as tf

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(config, ROOT / "config/schema.yaml")
    cl = config["clusters"]
    streams = inference.resolve_streams(args.streams or cl["detect"]["streams"], args.threads)
    inference.configure_threads(args.threads, streams)
    bands = [str(b) for b in config["planck"]["bands"]]
    size, pix = int(cl["patch"]["size"]), float(cl["patch"]["pixel_arcmin"])
    margin = cl["patch"]["cover_margin"]
    batch = int(cl["detect"]["batch_size"])
    precision = inference.resolve_precision(args.precision or cl["detect"]["precision"])
    nside_pred = prediction_nside(pix, cl["detect"]["nside"])
    load0 = os.getloadavg()

    # covers and indices of the four tile shapes (cut_cover's work, not timed)
    covers, n_per_ring = {}, {}
    for t in sorted(set(RING_OF_TILE.values())):
        tpix = tiles.tile_pixels(1024, t)
        glon, glat, angle = cover.sparse_cover_centres(1024, tpix, size, pix, margin, t)
        covers[t] = cover.build_index(glon, glat, angle, False, size, pix, nside_pred, t, margin)
        n_per_ring[t] = len(glon)
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(max(n_per_ring.values()), size, size, len(bands)))
    pool = pool.astype(np.float32)

    def inputs_for(n):
        return pool[:n]

    apart_before = matmul_gflops_apart(args.threads)
    timer = matmul_timer(tf, streams=streams)
    blas = blas_matmul_timer(args.threads)
    gf_before, blas_before = matmul_gflops(timer), matmul_gflops(blas)
    runs = {}
    bf16 = perf.bf16_kernels()
    if precision == "bfloat16" and not bf16:
        raise SystemExit(
            "--precision bfloat16: oneDNN has no bfloat16 kernels here (the CPU lacks "
            "AVX512-BF16/AMX, or ONEDNN_MAX_CPU_ISA limits it); use float32"
        )
    for prec in dict.fromkeys([precision, "float32", *(["bfloat16"] if bf16 else [])]):
        model = build_model((size, size, len(bands)), cl["model"], policy=inference.POLICIES[prec])
        runs[prec] = sky_inference(
            model, covers, batch, inputs_for, args.tiles, (blas, timer), streams
        )
    gf_after, blas_after = matmul_gflops(timer), matmul_gflops(blas)
    bf16_peak = matmul_gflops(matmul_timer(tf, streams=streams, dtype="bfloat16")) if bf16 else None
    apart_after = matmul_gflops_apart(args.threads)
    apart = (apart_before + apart_after) / 2
    blas_peak, peak = runs["float32"]["peaks"]
    macs = inference.model_macs(build_model((size, size, len(bands)), cl["model"]))
    t_mmf, n_mmf = mmf_tile_seconds(cl["mmf"], bands, args.threads)
    bub_rate, bub_note = bubble_windows_rate(config, args.threads)
    load1 = os.getloadavg()

    n_tile = np.mean([n_per_ring[RING_OF_TILE[t]] for t in range(48)])
    red = np.mean(
        [
            cover.cover_redundancy(n_per_ring[t], size, pix, 1024, t)
            for t in (RING_OF_TILE[i] for i in range(48))
        ]
    )
    rows = []
    for prec, r in runs.items():
        rate = r["n"] / r["t_inf"]
        gflops = 2 * macs * rate / 1e9
        ci = efficiency_interval(r["tiles"], macs)
        rows.append((prec, r, rate, gflops, efficiency(r["tiles"], macs), ci))
    head = runs[precision]
    head_total = head["t_inf"] + head["t_comb"]
    # fewer tiles: the whole sky extrapolated (inference by patches, combination by tiles)
    n_sky = sum(n_per_ring[RING_OF_TILE[t]] for t in range(48))
    sky_s = head["t_inf"] * n_sky / head["n"] + head["t_comb"] * 48 / args.tiles
    sky_label = (
        f"{sky_s:.1f} s"
        if args.tiles == 48
        else f"{sky_s:.1f} s extrapolated from {args.tiles} tiles ({head_total:.1f} s measured)"
    )
    head_eff, head_ci = [(e, ci) for p, *_, e, ci in rows if p == precision][0]
    arch = f"{cl['model']['architecture']} {cl['model']['filter_num']}"
    cpu = inference.cpu_info("model name") or platform.processor() or platform.machine()
    lines = [
        "# Whole-sky inference at the compute limit",
        "",
        f"{args.tiles} tiles at nside {NSIDE} (synthetic inputs), {arch} ({macs / 1e6:.0f} MMAC per "
        f"{size}x{size}x{len(bands)} patch, random weights), batch {batch}, {args.threads} "
        f"threads in {streams} streams; {cpu}, {os.cpu_count()} CPUs; "
        f"load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end (other jobs "
        "running: the seconds are those of a shared machine, the efficiency is a ratio to "
        "matmuls timed in the same process, between the same tiles). The peak is the faster of "
        "two ways of running a 2048² float32 matmul on the same cores: numpy's BLAS on every "
        "thread, and TensorFlow's matmul run as the inference runs.",
        f"Instruction set: {isa_note(args.isa_label)}; BLAS {perf.blas_core()}.",
        "",
        "| quantity | value | notes |",
        "|---|---|---|",
        f"| sparse cover | {n_tile:.0f} patches / tile, {n_sky} for the sky ({head['n']} in "
        f"the {args.tiles} tiles run) | "
        f"margin {margin} px, redundancy {red:.2f}x a tiling (dense cover_overlap 0.2: ~7x) |",
        f"| 2048² float32 matmul, BLAS | {blas_peak:.0f} GFLOP/s | numpy (OpenBLAS) on "
        f"{args.threads} threads, after every tile of the float32 inference; "
        f"{bf16_note(runs, 0)}before all {blas_before:.0f}, after all {blas_after:.0f} |",
        f"| 2048² float32 matmul, TensorFlow | {peak:.0f} GFLOP/s | {streams} at a time (one "
        f"per stream), after every tile of the float32 inference; "
        f"{bf16_note(runs, 1)}before all {gf_before:.0f}, after all {gf_after:.0f} |",
    ]
    for prec, r, rate, gflops, eff, (lo, hi, tmin, tmax) in rows:
        lines.append(
            f"| U-Net {prec} | {r['t_inf']:.1f} s inference + {r['t_comb']:.1f} s combination "
            f"= {r['t_inf'] + r['t_comb']:.1f} s | {rate:.0f} patches/s, {gflops:.0f} GFLOP/s, "
            f"efficiency {eff:.2f} [{lo:.2f}, {hi:.2f}] (of the faster float32 matmul; 68 %, "
            f"bootstrap over tiles; single tiles {tmin:.2f}-{tmax:.2f}) |"
        )
    gflops_of = {prec: gflops for prec, _, _, gflops, _, _ in rows}
    lines.append(
        f"| 2048² bfloat16 matmul | {bf16_peak:.0f} GFLOP/s | {streams} at a time, after all the "
        f"inference; the bfloat16 inference's ratio to it: "
        f"{gflops_of['bfloat16'] / bf16_peak:.2f} |"
        if bf16
        else "| bfloat16 | not run | oneDNN has no bfloat16 kernels here (CPU flags, or "
        "ONEDNN_MAX_CPU_ISA) |"
    )
    lines.append(
        f"| one {args.threads}-thread matmul apart | {apart:.0f} GFLOP/s | 2048² float32 in a "
        f"separate process, before ({apart_before:.0f}) and after ({apart_after:.0f}) all the "
        f"inference; the float32 inference's ratio to it: {gflops_of['float32'] / apart:.2f} |"
    )
    lines += [
        f"| combination on the sphere | {head['t_comb'] / args.tiles * 1e3:.0f} ms / tile | one "
        f"bincount through the cached index (nside {nside_pred}) |",
        f"| MMF | {t_mmf:.1f} s / tile | {n_mmf} patches of {cl['mmf']['patch_size']}², "
        f"{len(cl['mmf']['theta500_arcmin'])} theta500, {args.threads} threads, best of 2 runs |",
        f"| bubble windows | {bub_rate} / s | {bub_note}, {args.threads} threads |",
        "",
        f"Aims on 2 cores: whole sky <= 120 s ({sky_label} at {precision}), efficiency "
        f">= 0.8 ({head_eff:.2f}, 68 % interval [{head_ci[0]:.2f}, {head_ci[1]:.2f}]), MMF <= 5 s "
        f"per tile ({t_mmf:.1f} s).",
        "",
        f"`python benchmarks/full_sky_inference.py --threads {args.threads} --streams {streams} "
        f"--precision {precision} --tiles {args.tiles}"
        f"{f' --isa {args.isa_label}' if args.isa_label else ''}`",
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    print(f"full-sky: {sky_label}, efficiency {head_eff:.2f}, mmf {t_mmf:.1f} s/tile")


if __name__ == "__main__":
    main()
