"""Selection function: completeness per Y5R500 x theta500 cell from injected clusters.

Inputs: the per-tile injection tables of :mod:`skydetect.clusters.inject` (rule
``inject_tile``), whose ``SCORE_<detector>`` columns hold the best score of a detection
matched to each injection (NaN: none), and fixed thresholds per detector
(``results/evaluation/thresholds.json``: ``{detector: {"score": column, "threshold": x}}``).
An injection is detected by a detector when its score reaches the threshold; the
``combined`` detector (U-Net run ``clusters.evaluate.combine_run`` merged with the MMF)
detects an injection when either of its parts does at the combined entry's thresholds (the
U-Net's only with the MMF's S/N at ``unet_min_snr`` where the entry sets it).

Output (:func:`write_selection_function`), in the layout of Planck's
``HFI_PCCS_SZ-selfunc`` files (a completeness image over the theta500 x Y grid, the grid axes
as extensions): per detector an image extension ``<DETECTOR>`` (NAXIS2 = theta500 bins,
NAXIS1 = Y5R500 bins) of the completeness, ``<DETECTOR>_NINJ`` / ``_NDET`` (counts) and
``<DETECTOR>_LO`` / ``_HI`` (68.27 % Clopper-Pearson interval) images; ``THETAS`` and
``Y5R500`` table extensions with the bin edges, centres (geometric) and, for Y, log10.
"""

from __future__ import annotations

import json

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack
from scipy import stats

from skydetect.clusters.heldout import unet_min_snr
from skydetect.io.atomic import atomic_path

CONFIDENCE = 0.6827
AXES = ("THETAS", "Y5R500")
IMAGES = ("", "_NINJ", "_NDET", "_LO", "_HI")


class SelectionFunctionError(ValueError):
    """Bad thresholds, injection tables or selection-function file."""


def clopper_pearson(k, n, confidence: float = CONFIDENCE):
    """(fraction, lower, upper): k / n with its exact (Clopper-Pearson) interval from the
    beta distribution; NaN where n = 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(k < 0) or np.any(k > n):
        raise SelectionFunctionError("counts must satisfy 0 <= k <= n")
    a = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
        lo = np.where(k > 0, stats.beta.ppf(a, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - a, k + 1, n - k), 1.0)
    empty = n == 0
    return frac, np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)


def read_injections(paths, y_edges=None, theta_edges=None) -> Table:
    """The per-tile injection tables stacked (their metadata dropped), each checked for the
    columns the counts need and, when given, for the grid it was drawn on."""
    tables = []
    for path in paths:
        t = Table.read(path, format="ascii.ecsv")
        missing = [c for c in ("Y_BIN", "THETA_BIN", "Y5R500", "THETA500") if c not in t.colnames]
        if missing:
            raise SelectionFunctionError(f"{path}: missing injection column(s) {missing}")
        for key, edges in (("y5r500_edges", y_edges), ("theta500_edges", theta_edges)):
            if edges is not None and not np.allclose(t.meta.get(key, []), edges):
                raise SelectionFunctionError(
                    f"{path}: drawn on {key} {t.meta.get(key)}, not {list(edges)}"
                )
        t.meta = {}
        tables.append(t)
    if not tables:
        raise SelectionFunctionError("no injection tables given")
    return vstack(tables)


def read_thresholds(path, detectors) -> dict:
    """{detector: {"score": column, "threshold": x}} for ``detectors`` from the thresholds
    file of rule choose_thresholds (``combined``: its ``unet_threshold`` and
    ``mmf_threshold`` as score and threshold lists, U-Net first, and ``unet_min_snr``, the
    MMF S/N a U-Net detection also needs, as ``min_snr``: -inf where null or absent),
    checked. A threshold the validation never reached (null) keeps nothing (+inf)."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise SelectionFunctionError(f"cannot read thresholds file {path}: {exc}") from exc

    def value(x):
        return np.inf if x is None else float(x)

    out = {}
    for det in detectors:
        entry = data.get(det)
        keys = ("unet_threshold", "mmf_threshold") if det == "combined" else ("score", "threshold")
        if not isinstance(entry, dict) or any(k not in entry for k in keys):
            raise SelectionFunctionError(
                f"{path}: no entry {det!r} with {' and '.join(map(repr, keys))} (has {sorted(data)})"
            )
        if det == "combined":
            out[det] = {"score": ["PEAK_PROB", "SNR"],
                        "threshold": [value(entry["unet_threshold"]), value(entry["mmf_threshold"])],
                        "min_snr": unet_min_snr(entry)}  # fmt: skip
        else:
            out[det] = {"score": str(entry["score"]), "threshold": value(entry["threshold"])}
    return out


def detected(injections: Table, detector: str, threshold: dict, parts=None) -> np.ndarray:
    """Bool per injection: found by ``detector`` at ``threshold`` ({"score", "threshold"}).

    ``parts``: for ``combined``, the detectors (U-Net run, ``mmf``) whose SCORE columns
    carry the listed scores, in the order of the entry's lists; any part suffices, the U-Net
    only where the MMF's score also reaches the entry's ``min_snr`` (if given)."""
    def reach(col, thr):
        if col not in injections.colnames:
            raise SelectionFunctionError(f"injection table has no column {col!r}")
        s = np.asarray(injections[col], float)
        return np.nan_to_num(s, nan=-np.inf) >= thr

    if parts is None:
        return reach(f"SCORE_{detector}", threshold["threshold"])
    thr = threshold["threshold"]
    thr = thr if isinstance(thr, list) else [thr] * len(parts)
    if len(thr) != len(parts):
        raise SelectionFunctionError(
            f"{detector!r}: {len(thr)} thresholds for the parts {list(parts)}"
        )
    found = [reach(f"SCORE_{p}", t) for p, t in zip(parts, thr, strict=True)]
    if threshold.get("min_snr", -np.inf) > -np.inf:
        found[0] = found[0] & reach(f"SCORE_{parts[-1]}", threshold["min_snr"])
    return np.any(found, axis=0)


def cell_counts(y_bin, theta_bin, found, shape) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) images (n_theta, n_y): injections and detected injections per cell."""
    y_bin, theta_bin = np.asarray(y_bin, int), np.asarray(theta_bin, int)
    inside = (y_bin >= 0) & (y_bin < shape[1]) & (theta_bin >= 0) & (theta_bin < shape[0])
    flat = theta_bin[inside] * shape[1] + y_bin[inside]
    size = shape[0] * shape[1]
    n = np.bincount(flat, minlength=size).reshape(shape)
    k = np.bincount(flat, weights=np.asarray(found, bool)[inside], minlength=size)
    return n, k.reshape(shape).astype(int)


def bin_index(values, edges) -> np.ndarray:
    """Bin of each value in ``edges`` (-1 outside)."""
    v = np.asarray(values, float)
    i = np.searchsorted(edges, v, side="right") - 1
    return np.where((v >= edges[0]) & (v < edges[-1]), i, -1)


def completeness_grid(injections: Table, detectors, thresholds: dict, y_edges, theta_edges,
                      combined_parts=None) -> dict:  # fmt: skip
    """{detector: {"n", "k", "completeness", "lo", "hi"}} images (n_theta, n_y)."""
    shape = (len(theta_edges) - 1, len(y_edges) - 1)
    out = {}
    for det in detectors:
        parts = combined_parts if det == "combined" else None
        found = detected(injections, det, thresholds[det], parts)
        n, k = cell_counts(injections["Y_BIN"], injections["THETA_BIN"], found, shape)
        frac, lo, hi = clopper_pearson(k, n)
        out[det] = {"n": n, "k": k, "completeness": frac, "lo": lo, "hi": hi}
    return out


def write_selection_function(path, grid: dict, y_edges, theta_edges, thresholds: dict,
                             meta: dict | None = None) -> None:  # fmt: skip
    """Write the FITS file (layout: module docstring)."""
    y_edges, theta_edges = np.asarray(y_edges, float), np.asarray(theta_edges, float)
    primary = fits.PrimaryHDU()
    primary.header["CONTENT"] = "selection function from injected clusters"
    primary.header["CONFLEV"] = (CONFIDENCE, "Clopper-Pearson interval (_LO, _HI)")
    for key, val in (meta or {}).items():
        primary.header[key[:8].upper()] = val
    hdus = [primary]
    for det, g in grid.items():
        thr = thresholds[det]
        for suffix, key in zip(IMAGES, ("completeness", "n", "k", "lo", "hi"), strict=True):
            data = np.asarray(g[key], np.float64 if suffix in ("", "_LO", "_HI") else np.int32)
            hdu = fits.ImageHDU(data, name=f"{det.upper()}{suffix}")
            hdu.header["DETECTOR"] = det
            hdu.header["SCORE"] = ",".join(np.atleast_1d(thr["score"]).astype(str))
            hdu.header["THRESH"] = ",".join(f"{t:g}" for t in np.atleast_1d(thr["threshold"]))
            if np.isfinite(thr.get("min_snr", -np.inf)):
                hdu.header["MINSNR"] = (thr["min_snr"], "MMF S/N a U-Net detection also needs")
            hdu.header["CTYPE1"], hdu.header["CTYPE2"] = "Y5R500", "THETA500"
            hdus.append(hdu)
    thetas = Table({"THETA500_LO": theta_edges[:-1], "THETA500_HI": theta_edges[1:],
                    "THETA500": np.sqrt(theta_edges[:-1] * theta_edges[1:])})  # fmt: skip
    ys = Table({"Y5R500_LO": y_edges[:-1], "Y5R500_HI": y_edges[1:],
                "Y5R500": np.sqrt(y_edges[:-1] * y_edges[1:])})  # fmt: skip
    ys["LOG10Y"] = np.log10(ys["Y5R500"])
    for t, unit in ((thetas, "arcmin"), (ys, "arcmin2")):
        for c in t.colnames:
            t[c].unit = None if c == "LOG10Y" else unit
    hdus.append(fits.table_to_hdu(thetas))
    hdus[-1].name = "THETAS"
    hdus.append(fits.table_to_hdu(ys))
    hdus[-1].name = "Y5R500"
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp)


def read_selection_function(path) -> tuple[dict, np.ndarray, np.ndarray, dict]:
    """(grid, y_edges, theta_edges, thresholds) of a selection-function file."""
    try:
        hdul = fits.open(path)
    except OSError as exc:
        raise SelectionFunctionError(f"cannot read selection function {path}: {exc}") from exc
    with hdul:
        names = [h.name for h in hdul]
        missing = [a for a in AXES if a not in names]
        if missing:
            raise SelectionFunctionError(f"{path}: missing extension(s) {missing}")
        th, ys = Table(hdul["THETAS"].data), Table(hdul["Y5R500"].data)
        theta_edges = np.r_[th["THETA500_LO"], th["THETA500_HI"][-1]]
        y_edges = np.r_[ys["Y5R500_LO"], ys["Y5R500_HI"][-1]]
        grid, thresholds = {}, {}
        for h in hdul[1:]:
            if h.name in AXES or "DETECTOR" not in h.header:
                continue
            det = h.header["DETECTOR"]
            suffix = h.name[len(det):]
            key = dict(zip(IMAGES, ("completeness", "n", "k", "lo", "hi"), strict=True))[suffix]
            grid.setdefault(det, {})[key] = np.array(h.data)
            thresholds[det] = {"score": h.header["SCORE"], "threshold": h.header["THRESH"]}
    return grid, y_edges, theta_edges, thresholds


def truth_completeness(truth_matched: Table, y_edges, theta_edges) -> dict:
    """{"n", "k", "completeness", "lo", "hi"} of the mock's true clusters in the same cells:
    THETA500 / Y5R500 of the truth binned as the injections, with the evaluation's DETECTED
    flags (results/evaluation/{run}/truth_matched.ecsv)."""
    for col in ("Y5R500", "THETA500", "DETECTED"):
        if col not in truth_matched.colnames:
            raise SelectionFunctionError(f"truth table has no column {col!r}")
    shape = (len(theta_edges) - 1, len(y_edges) - 1)
    yb = bin_index(truth_matched["Y5R500"], np.asarray(y_edges, float))
    tb = bin_index(truth_matched["THETA500"], np.asarray(theta_edges, float))
    n, k = cell_counts(yb, tb, np.asarray(truth_matched["DETECTED"], bool), shape)
    frac, lo, hi = clopper_pearson(k, n)
    return {"n": n, "k": k, "completeness": frac, "lo": lo, "hi": hi}


def compare_with_truth(injected: dict, truth: dict, y_edges, theta_edges) -> Table:
    """One row per cell: injected and truth counts, completeness and intervals, and whether
    the two intervals overlap (AGREE; False also where either cell is empty)."""
    n_t, n_y = injected["n"].shape
    tb, yb = np.divmod(np.arange(n_t * n_y), n_y)
    t = Table({"THETA500_LO": np.asarray(theta_edges)[tb], "THETA500_HI": np.asarray(theta_edges)[tb + 1],
               "Y5R500_LO": np.asarray(y_edges)[yb], "Y5R500_HI": np.asarray(y_edges)[yb + 1]})  # fmt: skip
    for tag, g in (("INJ", injected), ("TRUTH", truth)):
        t[f"N_{tag}"] = g["n"].ravel()
        t[f"K_{tag}"] = g["k"].ravel()
        t[f"C_{tag}"] = g["completeness"].ravel()
        t[f"LO_{tag}"] = g["lo"].ravel()
        t[f"HI_{tag}"] = g["hi"].ravel()
    both = (t["N_INJ"] > 0) & (t["N_TRUTH"] > 0)
    t["AGREE"] = both & (t["LO_INJ"] <= t["HI_TRUTH"]) & (t["LO_TRUTH"] <= t["HI_INJ"])
    return t
