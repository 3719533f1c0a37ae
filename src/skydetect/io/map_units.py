"""Units of the HEALPix map files: each band's unit, the spellings found in the wild, and the
plausible scatter of a map in its unit (used by :mod:`skydetect.io.fits_maps`)."""

from __future__ import annotations

import numpy as np

# TUNIT1 of the I_STOKES column of each band's file: the Planck PR3 HFI maps (K_CMB below
# 545 GHz, MJy/sr above) and the MILCA Compton-y map. skydetect.sky.instrument takes its
# units from here (file layout lives in io, the instrument's physics in sky).
PR3_UNITS = {
    "100": "K_CMB",
    "143": "K_CMB",
    "217": "K_CMB",
    "353": "K_CMB",
    "545": "MJy/sr",
    "857": "MJy/sr",
    "y": "y",
}


# Plausible robust scatter (1.4826 x the median absolute deviation over the sky) of a map in its
# canonical unit: Planck's HFI maps and the y-map sit well inside (K_CMB ~1e-4, MJy/sr ~0.1-1,
# y ~1e-6); a map outside was written in another unit than its header says (uK as K_CMB,
# Jy/sr as MJy/sr) or holds something else.
PLAUSIBLE_SCATTER = {"K_CMB": (1e-6, 1e-2), "MJy/sr": (1e-3, 1e3), "y": (1e-9, 1e-3)}


def robust_scatter(values: np.ndarray, max_samples: int = 2_000_000) -> float:
    """1.4826 x the median absolute deviation of ``values`` (an even subsample of large maps)."""
    values = np.asarray(values, dtype=np.float64)
    step = max(1, values.size // max_samples)
    v = values[::step]
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


# Spellings of each unit found in the wild -> (canonical unit, factor to the canonical unit).
# A bare "K" is not here: it may be K_CMB or K_RJ (Rayleigh-Jeans), which differ by a factor
# of order unity at HFI frequencies, so it is refused with the expected spelling.
_UNIT_ALIASES: dict[str, tuple[str, float]] = {
    "k_cmb": ("K_CMB", 1.0),
    "kcmb": ("K_CMB", 1.0),
    "mk_cmb": ("K_CMB", 1e-3),
    "uk_cmb": ("K_CMB", 1e-6),
    "ukcmb": ("K_CMB", 1e-6),
    "mjy/sr": ("MJy/sr", 1.0),
    "mjy sr-1": ("MJy/sr", 1.0),
    "mjy sr^-1": ("MJy/sr", 1.0),
    "mjy/str": ("MJy/sr", 1.0),
    "y": ("y", 1.0),
    "y_sz": ("y", 1.0),
    "ysz": ("y", 1.0),
    "compton-y": ("y", 1.0),
    "compton_y": ("y", 1.0),
    "compton y": ("y", 1.0),
    "dimensionless": ("y", 1.0),
}
# Spellings of "no unit" that a Compton-y map carries (the y parameter is dimensionless).
Y_BLANK = ("", "none", "null", "1", "-")
# Units that are never right for the Compton-y band (temperature or intensity).
NOT_Y = ("K_CMB", "MJy/sr")


def canonical_unit(unit: str | None) -> tuple[str | None, float]:
    """Return (canonical unit, multiplicative factor to it), or (None, nan) if unknown."""
    if unit is None:
        return None, float("nan")
    return _UNIT_ALIASES.get(unit.strip().lower(), (None, float("nan")))
