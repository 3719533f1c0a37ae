"""Per-band robust scaling of the cluster inputs, one function for every use.

Statistics come from the training split only (:func:`fit`), are stored as JSON
(``results/datasets/normalisation.json``) and applied unchanged by :func:`apply` to
training, validation, test and inference inputs:

    x' = arcsinh(x / σ_band)

with σ either the MAD scale ``1.4826 · median|x − median x|`` (``method: mad``) or, with
``method: fit_up_to_mode``, the width of a Gaussian fitted to the histogram of x left of its
mode (the side free of the positive tail of dust and point sources). Non-finite inputs become
0 after scaling.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skydetect.io.atomic import atomic_path

__all__ = [
    "METHODS",
    "mad_sigma",
    "mode_fit_sigma",
    "fit",
    "apply",
    "save",
    "load",
    "NormalisationError",
]

METHODS = ("mad", "fit_up_to_mode")
MAD_TO_SIGMA = 1.4826


class NormalisationError(ValueError):
    """Bad statistics file, unknown method, or a band without statistics."""


def mad_sigma(x) -> float:
    x = np.asarray(x, float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise NormalisationError("no finite values to compute the MAD scale from")
    return float(MAD_TO_SIGMA * np.median(np.abs(x - np.median(x))))


def mode_fit_sigma(x, bins: int = 200) -> float:
    """σ of a Gaussian fitted to the histogram left of its mode (the mode fixed as centre)."""
    from scipy.optimize import curve_fit  # lazy: ~0.3 s to import, needed only here

    x = np.asarray(x, float).ravel()
    x = x[np.isfinite(x)]
    if x.size < 10:
        raise NormalisationError("too few finite values to fit the histogram")
    s0 = mad_sigma(x)
    if s0 == 0:
        return 0.0
    med = np.median(x)
    lo, hi = np.percentile(x, [0.5, 99.5])
    lo = max(lo, med - 10 * s0)
    hi = min(hi, med + 10 * s0)
    hist, edges = np.histogram(x, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    k = int(np.argmax(hist))
    mode = centres[k]
    left = slice(0, k + 1)
    if k < 3:
        return s0

    def gauss(c, a, s):
        return a * np.exp(-0.5 * ((c - mode) / s) ** 2)

    try:
        (a, s), _ = curve_fit(gauss, centres[left], hist[left], p0=(hist[k], s0), maxfev=5000)
    except RuntimeError:
        return s0
    return float(abs(s))


def fit(inputs, bands, method: str = "mad") -> dict:
    """Statistics per band from training ``inputs`` (N, S, S, B)."""
    if method not in METHODS:
        raise NormalisationError(
            f"unknown normalisation method {method!r} (clusters.normalise.method): "
            f"expected one of {', '.join(METHODS)}"
        )
    inputs = np.asarray(inputs)
    if inputs.ndim != 4 or inputs.shape[-1] != len(bands):
        raise NormalisationError(f"inputs of shape {inputs.shape} do not match bands {bands}")
    if inputs.shape[0] == 0:
        raise NormalisationError("no training patches to compute the normalisation from")
    stats = {"method": method, "bands": {}}
    for i, band in enumerate(bands):
        x = inputs[..., i]
        sigma = mad_sigma(x) if method == "mad" else mode_fit_sigma(x)
        if not np.isfinite(sigma) or sigma <= 0:
            raise NormalisationError(f"band {band}: scale {sigma} is not positive (constant map?)")
        stats["bands"][str(band)] = {
            "sigma": sigma,
            "median": float(np.nanmedian(x)),
            "n_values": int(np.isfinite(x).sum()),
        }
    return stats


def apply(inputs, stats: dict, bands) -> np.ndarray:
    """Normalised float32 copy of ``inputs`` (..., B) with ``bands`` in the last axis."""
    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.shape[-1] != len(bands):
        raise NormalisationError(
            f"inputs have {inputs.shape[-1]} bands in the last axis, expected {list(bands)}"
        )
    have = stats.get("bands", {})
    missing = [str(b) for b in bands if str(b) not in have]
    if missing:
        raise NormalisationError(
            f"no normalisation statistics for band(s) {missing} (have {sorted(have)})"
        )
    sigma = np.array([have[str(b)]["sigma"] for b in bands], dtype=np.float32)
    out = np.arcsinh(inputs / sigma)
    out[~np.isfinite(out)] = 0.0
    return out


def save(stats: dict, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(stats, indent=2, sort_keys=True))


def load(path) -> dict:
    try:
        stats = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise NormalisationError(f"cannot read normalisation statistics {path}: {exc}") from exc
    if "bands" not in stats:
        raise NormalisationError(f"{path}: no 'bands' entry")
    return stats
