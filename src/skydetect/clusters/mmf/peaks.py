"""Peaks of the S/N cube of a patch: local maxima over position and theta500."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from skydetect.clusters.mmf.result import PatchResult


@dataclass
class Peak:
    y: float  # fractional row
    x: float  # fractional column
    itheta: int
    snr: float
    yval: float
    npix: int  # pixels of the connected region above threshold


def _parabolic(lo: float, mid: float, hi: float) -> float:
    """Sub-pixel offset (within +-0.5) of the maximum of a 3-point parabola."""
    den = lo - 2.0 * mid + hi
    return float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5)) if den < 0 else 0.0


def find_peaks(
    result: PatchResult, threshold: float, accept=None, footprint: int = 5
) -> list[Peak]:
    """Local maxima of the S/N over position and theta500 at S/N >= ``threshold``.

    The max over theta500 of the S/N cube is searched for 2-D local maxima (``footprint``
    pixels wide); the best theta500 is the argmax at the peak. ``accept`` (S, S) bool limits
    where peaks count (patch interior). Positions are refined by a 3-point parabola per axis.
    """
    smax = result.snr.max(axis=0)
    above = smax >= threshold
    if not above.any():
        return []
    locmax = (smax == ndimage.maximum_filter(smax, size=footprint, mode="nearest")) & above
    if accept is not None:
        locmax &= accept
    labels, _ = ndimage.label(above)
    sizes = np.bincount(labels.ravel())
    s = smax.shape[0]
    peaks = []
    for yy, xx in zip(*np.nonzero(locmax), strict=True):
        dy = _parabolic(*smax[yy - 1 : yy + 2, xx]) if 0 < yy < s - 1 else 0.0
        dx = _parabolic(*smax[yy, xx - 1 : xx + 2]) if 0 < xx < s - 1 else 0.0
        it = int(np.argmax(result.snr[:, yy, xx]))  # best theta500 at the peak only
        peaks.append(
            Peak(
                y=yy + dy,
                x=xx + dx,
                itheta=it,
                snr=float(smax[yy, xx]),
                yval=float(result.snr[it, yy, xx] * result.sigma[it]),
                npix=int(sizes[labels[yy, xx]]),
            )
        )
    return peaks


