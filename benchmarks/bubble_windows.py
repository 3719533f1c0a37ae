"""Benchmark: bubble windows per second — negative sampling and the shared preprocessing.

On one default mock field (config/config.yaml: 3° x 2° at 8", 1350 x 900 px, masked), measures

* sampling: valid negative windows per second with ``skydetect.bubbles.negatives.sample_windows``
  (summed-area tables: O(1) NaN and flatness checks per draw), against the peer method, the
  reference's per-window check (slice the window, ``np.isnan(...).any()`` and ``std`` on it);
* preprocessing: windows per second through ``preprocess_window`` (point-source mask,
  normalisation, anti-aliasing, bilinear resampling to ``bubbles.preprocess.input_size``),
  against the peer method, a plain min/max-clip + ``scipy.ndimage.zoom`` resize without
  anti-aliasing or point-source masking (what the reference's 8-bit PNG pipeline amounts to);
* sliding windows of a whole field (``bubbles.windows``, validation / detection): the field
  preprocessor (NaN fill and point-source mask once per field, one anti-aliasing per window
  scale, windows gathered from it, statistics from row summed-area tables), on 1 and 2
  threads, against the previous per-window implementation (top-hat, statistics, Gaussian
  and resampling redone for every window: ``old_preprocess_window`` below).

    python benchmarks/bubble_windows.py [--windows 300]

Writes benchmarks/results/bubble_windows.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import yaml
from scipy import ndimage

from skydetect.bubbles.masks import mask_field
from skydetect.bubbles.negatives import fit_lognormal, sample_windows
from skydetect.bubbles.preprocess import FieldPreprocessor, preprocess_window
from skydetect.bubbles.scales import window_sizes
from skydetect.bubbles.windows import sizes_to_pixels, sliding_windows
from skydetect.config import validate_config
from skydetect.io.spitzer import SpitzerField, field_name
from skydetect.sky.spitzer import simulate_field

ROOT = Path(__file__).resolve().parents[1]


def naive_sample(data, rng, n, mu, sigma, half_width_factor, min_size, flat_min_std, max_tries):
    """Peer: draw windows one by one and check NaN / flatness on the sliced window."""
    _, h, w = data.shape
    out, tries = [], 0
    while len(out) < n and tries < max_tries:
        tries += 1
        size = max(
            int(np.rint(2 * rng.uniform(*half_width_factor) * np.exp(rng.normal(mu, sigma)))),
            min_size,
        )
        x0 = int(np.rint(rng.uniform(0, w) - size / 2))
        y0 = int(np.rint(rng.uniform(0, h) - size / 2))
        if x0 < 0 or y0 < 0 or x0 + size > w or y0 + size > h:
            continue
        win = data[:, y0 : y0 + size, x0 : x0 + size]
        if np.isnan(win).any() or (win.reshape(2, -1).std(axis=1) < flat_min_std).any():
            continue
        out.append((x0, y0, size))
    return out


def naive_preprocess(image, x0, y0, size, input_size):
    """Peer: per-channel min / max scaling and a zoom, no anti-aliasing, no source masking."""
    win = np.nan_to_num(image[:, y0 : y0 + size, x0 : x0 + size].astype(float))
    out = []
    for c in win:
        lo, hi = c.min(), c.mean() + 3 * c.std()
        c = np.clip((c - lo) / max(hi - lo, 1e-12), 0, 1)
        out.append(ndimage.zoom(c, input_size / size, order=1)[:input_size, :input_size])
    return np.stack(out, axis=-1)


def old_preprocess_window(image, x0, y0, size, input_size, clip_sigma=3.0, nsigma=5.0, fpx=5):
    """The previous per-window preprocessing (every step on the window alone)."""
    w = np.asarray(image[:, y0 : y0 + size, x0 : x0 + size], np.float64)
    ch8 = w[1]
    fin = np.isfinite(ch8)
    filled = np.where(fin, ch8, np.median(ch8[fin]))
    resid = ndimage.white_tophat(filled, size=fpx, mode="nearest")
    r = resid[fin]
    med = np.median(r)
    ps = fin & (resid > med + nsigma * 1.4826 * np.median(np.abs(r - med)))
    out = np.zeros_like(w)
    for c in range(w.shape[0]):
        x = w[c]
        finite = np.isfinite(x)
        valid = finite & ~ps
        lo = float(x[finite].min())
        hi = float(x[valid].mean() + clip_sigma * x[valid].std())
        if hi > lo:
            labels, _ = ndimage.label(~finite)
            x = np.where(finite, x, hi)
            out[c] = (np.clip(x, lo, hi) - lo) / (hi - lo)
    f = size / input_size
    if f > 1:
        out = ndimage.gaussian_filter(out, (0, (f - 1) / 2, (f - 1) / 2), mode="nearest")
    t = np.clip((np.arange(input_size) + 0.5) * f - 0.5, 0, size - 1)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, size - 1)
    w1 = t - i0
    rows = out[:, i0, :] * (1 - w1)[:, None] + out[:, i1, :] * w1[:, None]
    return np.moveaxis(rows[:, :, i0] * (1 - w1) + rows[:, :, i1] * w1, 0, -1)


def rate(fn, n_items):
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return n_items / dt, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=300)
    args = ap.parse_args()
    config = yaml.safe_load(open(ROOT / "config" / "config.yaml"))
    validate_config(config, ROOT / "config" / "schema.yaml")
    bub = config["bubbles"]
    pp = bub["preprocess"]
    neg = bub["negatives"]
    field = field_name(bub["fields"]["train"][0])
    i4, _, truth = simulate_field(field, bub["simulate"], config["seed"])
    from astropy.wcs import WCS

    wcs = WCS(i4.header)
    pix = bub["simulate"]["pixel_arcsec"]
    data = np.stack([i4.data, i4.data]).astype(np.float32)  # the 8 µm grid for both channels
    tile, _ = mask_field(SpitzerField(data, wcs, pix, field), truth, bub["mask"]["radius_reff"])
    mu, sigma = fit_lognormal(np.asarray(truth["MajAxis"]) * 60 / pix)
    n = args.windows
    kw = dict(
        half_width_factor=neg["half_width_factor"],
        min_size_px=neg["min_size_px"],
        flat_min_std=neg["flat_min_std"],
    )
    sampling = []
    for m in sorted({n, 3000}):  # 3000 per tile is the reference's count
        ours_s, _ = rate(
            lambda m=m: sample_windows(tile.data, np.random.default_rng(0), m, mu, sigma, **kw), m
        )
        peer_s, _ = rate(
            lambda m=m: naive_sample(
                tile.data,
                np.random.default_rng(0),
                m,
                mu,
                sigma,
                kw["half_width_factor"],
                kw["min_size_px"],
                kw["flat_min_std"],
                100 * m,
            ),
            m,
        )
        sampling.append((m, ours_s, peer_s))
    x0, y0, size = sample_windows(tile.data, np.random.default_rng(1), n, mu, sigma, **kw)
    ours_p, _ = rate(
        lambda: [
            preprocess_window(tile.data, a, b, s, **pp)
            for a, b, s in zip(x0, y0, size, strict=True)
        ],
        len(x0),
    )
    peer_p, _ = rate(
        lambda: [
            naive_preprocess(tile.data, a, b, s, pp["input_size"])
            for a, b, s in zip(x0, y0, size, strict=True)
        ],
        len(x0),
    )
    # sliding windows of the whole field at the configured scales
    sizes = sizes_to_pixels(window_sizes(bub)[0], pix, tile.shape)
    sx, sy, ss = sliding_windows(tile.shape, sizes, bub["windows"]["stride_fraction"])
    n_old = min(len(sx), args.windows)
    pick = np.random.default_rng(2).choice(len(sx), n_old, replace=False)
    old_w, _ = rate(
        lambda: [
            old_preprocess_window(tile.data, sx[i], sy[i], ss[i], pp["input_size"]) for i in pick
        ],
        n_old,
    )
    field_rates = []
    for threads in (1, 2):
        field_rates.append(
            rate(
                lambda threads=threads: FieldPreprocessor(tile.data, threads=threads, **pp).windows(
                    sx, sy, ss
                ),
                len(sx),
            )
        )
    lines = [
        "# Bubble windows per second",
        "",
        f'Field {field}: {tile.shape[1]} x {tile.shape[0]} px at {pix}" (default mock), '
        f"{len(x0)} windows, median side {int(np.median(size))} px, "
        f"input {pp['input_size']} px; {platform.processor() or platform.machine()}, "
        "2 cores shared with other jobs (numbers are indicative).",
        "",
        "| step | skydetect (windows/s) | peer (windows/s) | ratio skydetect/peer |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| negative sampling, {m} windows (summed-area tables vs per-window slicing) | "
            f"{o:.0f} | {p:.0f} | {o / p:.2f} |"
            for m, o, p in sampling
        ],
        f"| preprocessing (`preprocess_window` vs min/max + zoom) | {ours_p:.1f} | "
        f"{peer_p:.1f} | {ours_p / peer_p:.2f} |",
        *[
            f"| sliding windows of the field ({len(sx)} windows of {list(map(int, sizes))} px): "
            f"field preprocessor, {t} thread(s) incl. its set-up ({dt:.1f} s) vs the previous "
            f"per-window code ({n_old} windows timed) | {r:.0f} | {old_w:.0f} | {r / old_w:.1f} |"
            for t, (r, dt) in zip((1, 2), field_rates, strict=True)
        ],
        "",
        "Command: `python benchmarks/bubble_windows.py --windows " + str(n) + "`",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "bubble_windows.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
