"""Benchmark: bubble validation and detection on one 3° x 2° field at GLIMPSE's 1.2″ pixel.

A synthetic field of 9000 x 6000 px (two bands: smooth emission with structure on all scales,
noise, point sources, rings, a saturated NaN core and an uncovered edge) goes, in a fresh
process per mode, through

* ``validation``: ``skydetect.bubbles.train_data.load_validation`` on a window file of the
  field + ``skydetect.bubbles.train.validate`` (the streamed windows of training's validation);
* ``detection``: ``skydetect.bubbles.detect.detect_field`` (rule detect_bubbles),

with the light SSD (random weights: the cost does not depend on them) and the whole field in
memory. Windows are streamed, so the
peak memory does not depend on how many are processed: a regular sample of the windows
(``--fraction``) is run and the time extrapolated to all of them (the per-field fixed cost
is timed apart). Two settings: config/config.yaml (128 px input, its window sides) and the
paper's (the schema defaults: 300 px input, window sides up to 108′), both with the light
backbone. Reported: peak resident memory (ru_maxrss) against the 4 GB job limit and against
the whole-field window stack the previous code kept in memory; seconds per field; the whole
plane (45 survey fields, 1° ≤ |l| ≤ 65°) on this machine's 2 cores, extrapolated.

    python benchmarks/bubbles_scale.py [--fraction 0.02]

Writes benchmarks/results/bubbles_scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIX = 1.2
WIDTH, HEIGHT = 3.0, 2.0
LIMIT_MB = 4000
N_SURVEY = 45


def synthetic_field(path: Path) -> None:
    from scipy import ndimage

    from skydetect.io.spitzer import SpitzerField, field_wcs, write_field

    w, (ny, nx) = field_wcs(15.0, 0.0, WIDTH, HEIGHT, PIX)
    rng = np.random.default_rng(0)
    small = rng.standard_normal((ny // 32 + 1, nx // 32 + 1)).astype(np.float32)
    large = ndimage.zoom(ndimage.gaussian_filter(small, 3), 32, order=1)[:ny, :nx]
    data = np.empty((2, ny, nx), np.float32)
    for c, level in enumerate((50.0, 80.0)):
        data[c] = level * np.exp(0.4 * large)
        data[c] += rng.normal(0, 0.5, (ny, nx)).astype(np.float32)
    stars = rng.integers(0, [ny, nx], (20000, 2))
    data[1, stars[:, 0], stars[:, 1]] += 500
    yy, xx = np.ogrid[:400, :400]
    for cy, cx in rng.integers(500, [ny - 500, nx - 500], (40, 2)):  # rings of 0.5'-4'
        r = rng.uniform(25, 200)
        ring = np.exp(-0.5 * ((np.hypot(yy - 200, xx - 200) - r) / (0.15 * r)) ** 2)
        data[1, cy - 200 : cy + 200, cx - 200 : cx + 200] += 40 * ring.astype(np.float32)
    data[:, 3000:3040, 4500:4540] = np.nan  # a saturated core
    data[0, :, :200] = np.nan  # 24 µm coverage edge
    write_field(path, SpitzerField(data, w, PIX, "01500+0000"))


def run_mode(mode: str, field: Path, fraction: float, cfg: dict) -> dict:
    """One mode in this process; returns seconds, windows and peak memory (MB)."""
    import skydetect  # noqa: F401  (legacy Keras switch)
    from skydetect.bubbles.detect import DetectSettings, detect_field
    from skydetect.bubbles.preprocess import FieldPreprocessor
    from skydetect.bubbles.ssd.model import build_ssd
    from skydetect.bubbles.train import set_threads, validate
    from skydetect.bubbles.train_data import load_validation
    from skydetect.bubbles.windows import (
        make_windows,
        overhang,
        reaches_past,
        sizes_to_pixels,
        sliding_windows,
        write_windows,
    )
    from skydetect.io.spitzer import read_field

    set_threads(2)
    bub = cfg["bubbles"]
    pp = bub["preprocess"]
    model, priors = build_ssd({"backbone": "light", "input_size": pp["input_size"]})
    settings = DetectSettings.from_config(bub["detect"])
    t0 = time.perf_counter()
    f = read_field(field)
    t_read = time.perf_counter() - t0
    sizes = sizes_to_pixels(bub["windows"]["sizes_arcmin"], PIX, f.shape)
    edge_pad = bub["windows"]["edge_pad"]
    x0, y0, ss = sliding_windows(f.shape, sizes, bub["windows"]["stride_fraction"], edge_pad)
    n_all = len(x0)
    step = max(int(round(1 / fraction)), 1)
    # a regular sample of whole rows of windows at every scale (a row shares its summed-area
    # table and its resampled strip, as in a full run)
    rows = np.unique(np.stack([ss, y0], axis=1), axis=0)
    keep = rows[::step]
    pick = np.flatnonzero(
        ((ss[:, None] == keep[None, :, 0]) & (y0[:, None] == keep[None, :, 1])).any(axis=1)
    )
    if mode == "timing":  # fixed costs, then the cost per window with every scale smoothed
        t0 = time.perf_counter()
        fp = FieldPreprocessor(f.data, threads=2, pad=overhang(f.shape, x0, y0, ss), **pp)
        t_prepare = time.perf_counter() - t0
        cache = {}
        t0 = time.perf_counter()
        for size in sizes:
            cache[int(size)] = fp.smoothed(int(size))
        t_smooth = time.perf_counter() - t0
        fp.smoothed = lambda size: cache[int(size)]  # the timed run below smooths nothing
        # inside windows (the sampled rows) and edge windows (each prepared from its own
        # cut-out: ten of each scale) are timed apart and scaled by their own counts
        edge = reaches_past(f.shape, x0, y0, ss)
        inner = pick[~edge[pick]]
        t0 = time.perf_counter()
        detect_field(model, priors, f.data, (x0[inner], y0[inner], ss[inner]), fp, settings)
        per_window = (time.perf_counter() - t0) / len(inner)
        t_edge = 0.0
        for size in sizes:
            sel = np.flatnonzero(edge & (ss == size))
            if len(sel) == 0:
                continue
            few = sel[:: max(len(sel) // 10, 1)][:10]
            t0 = time.perf_counter()
            detect_field(model, priors, f.data, (x0[few], y0[few], ss[few]), fp, settings)
            t_edge += (time.perf_counter() - t0) / len(few) * len(sel)
        extra = {
            "seconds_read": t_read,
            "seconds_prepare": t_prepare,
            "seconds_smooth": t_smooth,
            "seconds_per_window": per_window,
            "windows_edge": int(edge.sum()),
            "seconds_edge": t_edge,
            "seconds_field": t_read + t_prepare + t_smooth + (~edge).sum() * per_window + t_edge,
        }
    elif mode == "detection":  # the job as detect_bubbles runs it (memory)
        detect_field(
            model, priors, f.data, (x0[pick], y0[pick], ss[pick]), pp, settings, threads=2
        )
        extra = {}
    else:  # validation as train_ssd runs it: windows streamed from the field file (memory)
        truth = {
            "boxes": np.zeros((0, 4)),
            "clear": np.zeros(0, bool),
            "mwp": np.zeros(0, "U1"),
            "glon": np.zeros(0),
            "glat": np.zeros(0),
            "maj_arcmin": np.zeros(0),
            "shape": f.shape,
            "pixel_arcsec": PIX,
        }
        arrays = make_windows(
            {"01500+0000": truth}, bub["windows"]["sizes_arcmin"], 1 / 3, edge_pad
        )
        for k in ("x0", "y0", "size", "field"):
            arrays[k] = arrays[k][pick]
        wpath = field.with_name("windows.h5")
        write_windows(wpath, arrays, {})
        del f
        fields = load_validation(wpath, {"01500+0000": field}, pp)
        validate(model, priors, fields, settings, bub["train"]["thresholds"])
        extra = {}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        **extra,
        "windows_sample": len(pick),
        "windows_field": n_all,
        "sizes_px": [int(s) for s in sizes],
        "peak_mb": peak,
        "input_size": int(pp["input_size"]),
    }


def configs() -> dict:
    """The laptop default (config/config.yaml) and the paper's setting (the schema defaults:
    SSD300-size input, with the light backbone; the reference's window sides)."""
    from skydetect.bubbles.scales import REFERENCE_WINDOW_SIZES, window_sizes
    from skydetect.config import validate_config

    laptop = yaml.safe_load(open(ROOT / "config" / "config.yaml"))
    validate_config(laptop, ROOT / "config" / "schema.yaml")
    paper = yaml.safe_load(open(ROOT / "config" / "config.yaml"))
    paper["bubbles"]["windows"] = {"sizes_arcmin": list(REFERENCE_WINDOW_SIZES)}
    paper["bubbles"].pop("preprocess", None)
    validate_config(paper, ROOT / "config" / "schema.yaml")
    for cfg in (laptop, paper):  # the window sides of the source
        cfg["bubbles"]["windows"]["sizes_arcmin"] = window_sizes(cfg["bubbles"])[0]
    return {"config.yaml": laptop, "paper (schema defaults)": paper}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.02)
    ap.add_argument(
        "--mode", choices=["validation", "detection", "timing"], help=argparse.SUPPRESS
    )
    ap.add_argument("--field", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--setting", help=argparse.SUPPRESS)
    ap.add_argument("--detect-batch", type=int, help="override bubbles.detect.batch_size")
    args = ap.parse_args()
    cfgs = configs()
    if args.detect_batch:
        for c in cfgs.values():
            c["bubbles"]["detect"]["batch_size"] = args.detect_batch
    if args.mode:  # child process
        print(json.dumps(run_mode(args.mode, args.field, args.fraction, cfgs[args.setting])))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        field = Path(tmp) / "01500+0000.fits"
        synthetic_field(field)
        size_mb = field.stat().st_size / 2**20
        for setting in cfgs:
            for mode in ("validation", "detection", "timing"):
                cmd = [sys.executable, __file__, "--mode", mode, "--field", str(field),
                       "--fraction", str(args.fraction), "--setting", setting]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                     env={**os.environ})
                r = json.loads(out.stdout.strip().splitlines()[-1])
                r["setting"] = setting
                rows.append(r)
                print(r, flush=True)
    mem_total = int(open("/proc/meminfo").read().split()[1]) / 1024
    lines = [
        "# Bubbles at the paper's scale: one 3° x 2° field at 1.2″",
        "",
        f"Synthetic field 9000 x 6000 px (aligned FITS {size_mb:.0f} MB), light SSD (random "
        "weights), 2 threads. Per field: a fixed cost (read, NaN fill and point-source mask, "
        "one anti-aliasing per window scale) plus a cost per window (preprocessing + network), "
        f"timed on every {round(1 / args.fraction)}th row of windows of each scale and scaled "
        "to all of them; the edge windows (bubbles.windows.edge_pad, each prepared from its "
        "own cut-out) timed apart, ten per scale, and scaled to their number. Peak "
        "memory = ru_maxrss of the job's process, against the 4 GB job limit and against the "
        "whole-field window stack the previous code held (N x S x S x 2 float32). Machine: "
        f"{mem_total:.0f} MB, 2 cores shared with other jobs (times are indicative).",
        "",
        "| setting | window sides (px) | windows | input S | peak memory validation / "
        "detection (MB) | / 4 GB | window stack (MB) | stack / peak | fixed s (read + "
        "fill + smoothing) | ms per inside window | edge windows: n, s | s per field |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for setting in cfgs:
        by = {r["mode"]: r for r in rows if r["setting"] == setting}
        v, d, t = by["validation"], by["detection"], by["timing"]
        stack = t["windows_field"] * t["input_size"] ** 2 * 2 * 4 / 2**20
        peak = max(v["peak_mb"], d["peak_mb"])
        fixed = t["seconds_read"] + t["seconds_prepare"] + t["seconds_smooth"]
        lines.append(
            f"| {setting} | {t['sizes_px']} | {t['windows_field']} | {t['input_size']} | "
            f"{v['peak_mb']:.0f} / {d['peak_mb']:.0f} | {peak / LIMIT_MB:.2f} | {stack:.0f} | "
            f"{stack / peak:.1f} | {fixed:.0f} ({t['seconds_read']:.0f} + "
            f"{t['seconds_prepare']:.0f} + {t['seconds_smooth']:.0f}) | "
            f"{1000 * t['seconds_per_window']:.1f} | {t['windows_edge']}, "
            f"{t['seconds_edge']:.0f} | {t['seconds_field']:.0f} |"
        )
    lines.append("")
    for setting in cfgs:
        t = next(r for r in rows if r["setting"] == setting and r["mode"] == "timing")
        sec = t["seconds_field"]
        lines.append(
            f"Whole plane, {setting}: {N_SURVEY} GLIMPSE/MIPSGAL fields (1° ≤ |l| ≤ 65°), "
            f"one detect_bubbles job each, on 2 cores: {N_SURVEY} x {sec:.0f} s = "
            f"{N_SURVEY * sec / 3600:.1f} h (the reference: \"a few hours\" on one GPU)."
        )
    lines += ["", f"Command: `python benchmarks/bubbles_scale.py --fraction {args.fraction}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "bubbles_scale.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
