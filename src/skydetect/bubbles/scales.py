"""Which bubble sizes the sliding windows show at a scale the network was trained on.

A training crop around a bubble of MajAxis ``m`` (pixels) has side ``2 k m`` with ``k``
uniform in ``half_width_factor`` (the reference's 1.7-5.9), but never less than the bubble's
box plus 2 pixels or ``min_size`` pixels, and never more than the field's smaller side
(:func:`crop_side`, used by :func:`skydetect.bubbles.crops.crop_geometry`). The network
therefore knows a bubble of that size only inside windows whose side lies between the
smallest and the largest crop side it can have (:func:`crop_side_range`). A bubble is
*covered* when at least one sliding-window side (``bubbles.windows.sizes_arcmin``, rounded to
pixels and capped at the field as :func:`skydetect.bubbles.windows.sizes_to_pixels` does)
falls in that range; with the reference k range one window side covers sizes within a factor
5.9 / 1.7 = 3.5.

:func:`check_scales` raises naming the uncovered sizes; :func:`window_sizes_for` proposes
window sides covering a size range, the sides of a source without sides given in the config
(:func:`window_sizes`).
"""

from __future__ import annotations

import numpy as np

from .catalog import BOX_SCALE, HALF_WIDTH_FACTOR
from .windows import box_centres, sizes_to_pixels

# MajAxis range (arcmin) of the MWP DR2 clear bubbles (624 in the Galactic-plane CSV of
# ../shared/data/catalogs with the clear-name list): used for real data at config time,
# before the catalogue exists.
MWP_DR2_CLEAR_MAJAXIS = (0.13, 10.62)
# the reference's window sides (arcmin; 70-5400 px at GLIMPSE's 1.2")
REFERENCE_WINDOW_SIZES = (1.4, 4.0, 12.0, 36.0, 108.0)


def crop_side(half_px, half_box_px, field_side: int, min_size: int = 8):
    """Side (pixels) of a training crop of half-width ``half_px`` around a bubble whose box has
    half-width ``half_box_px``: at least the box plus 2 pixels and ``min_size``, at most
    ``field_side``."""
    half_px = np.asarray(half_px, float)
    side = np.maximum(np.maximum(np.rint(2 * half_px), np.ceil(2 * half_box_px) + 2), min_size)
    return np.clip(side, 1, field_side).astype(np.int64)


def crop_side_range(
    maj_px,
    half_width_factor=HALF_WIDTH_FACTOR,
    box_scale: float = BOX_SCALE,
    field_side: int = 10**9,
    min_size: int = 8,
):
    """Smallest and largest crop side (pixels) of bubbles of MajAxis ``maj_px`` (pixels)."""
    m = np.asarray(maj_px, float)
    half_box = box_scale * m
    lo = crop_side(half_width_factor[0] * m, half_box, field_side, min_size)
    hi = crop_side(half_width_factor[1] * m, half_box, field_side, min_size)
    return lo, hi


def covered(
    maj_arcmin,
    sizes_arcmin,
    pixel_arcsec: float,
    field_shape=(10**9, 10**9),
    half_width_factor=HALF_WIDTH_FACTOR,
    box_scale: float = BOX_SCALE,
    min_size: int = 8,
) -> np.ndarray:
    """Boolean per size: some window side lies within the crop sides of that bubble size."""
    m_px = np.asarray(maj_arcmin, float).reshape(-1) * 60.0 / pixel_arcsec
    side = int(min(field_shape))
    lo, hi = crop_side_range(m_px, half_width_factor, box_scale, side, min_size)
    w = sizes_to_pixels(sizes_arcmin, pixel_arcsec, tuple(field_shape))
    return ((w[None, :] >= lo[:, None]) & (w[None, :] <= hi[:, None])).any(axis=1)


def _uncovered_text(m: np.ndarray, ok: np.ndarray) -> str:
    """The uncovered sizes (arcmin): each value when few, else the uncovered ranges."""
    bad = np.unique(np.round(m[~ok], 2))
    if len(bad) <= 6:
        return ", ".join(f"{x:.2f}" for x in bad)
    order = np.argsort(m, kind="stable")
    ms, oks = m[order], ok[order]
    runs, start = [], None
    for i, good in enumerate(oks):
        if not good and start is None:
            start = i
        if start is not None and (good or i == len(oks) - 1):
            end = i if not good else i - 1
            runs.append(f"{ms[start]:.2f}-{ms[end]:.2f}")
            start = None
    return ", ".join(runs)


def window_sizes_for(
    min_arcmin: float, max_arcmin: float, half_width_factor=HALF_WIDTH_FACTOR, overlap: float = 1.15
) -> list[float]:
    """Window sides (arcmin, rounded to 0.1') covering bubbles of MajAxis ``min``-``max``: the
    first at ``2 k_hi min``, then a geometric series of ratio ``(k_hi / k_lo) / overlap``."""
    k_lo, k_hi = float(half_width_factor[0]), float(half_width_factor[1])
    ratio = max((k_hi / k_lo) / overlap, 1.05)
    sizes = [2 * k_hi * min_arcmin / overlap]
    while sizes[-1] / (2 * k_lo) < max_arcmin:
        sizes.append(sizes[-1] * ratio)
    return [
        float(np.floor(s * 10) / 10) if i == 0 else float(np.round(s, 1))
        for i, s in enumerate(sizes)
    ]


def check_scales(
    maj_arcmin,
    sizes_arcmin,
    pixel_arcsec: float,
    field_shape=(10**9, 10**9),
    half_width_factor=HALF_WIDTH_FACTOR,
    box_scale: float = BOX_SCALE,
    min_size: int = 8,
    what: str = "catalogue bubbles",
) -> None:
    """Raise ``ValueError`` naming the bubble sizes that no window shows at a trained scale."""
    m = np.asarray(maj_arcmin, float).reshape(-1)
    m = m[np.isfinite(m) & (m > 0)]
    ok = covered(m, sizes_arcmin, pixel_arcsec, field_shape, half_width_factor, box_scale, min_size)
    if ok.all():
        return
    lo, hi = float(m.min()), float(m.max())
    raise ValueError(
        f"{what}: MajAxis {_uncovered_text(m, ok)} arcmin ({(~ok).sum()} of {len(m)}) appear in no "
        f"sliding window at a scale the training crops cover (config keys "
        f"bubbles.windows.sizes_arcmin = {list(sizes_arcmin)}, "
        f'bubbles.negatives.half_width_factor = {list(half_width_factor)}, pixel {pixel_arcsec}"); '
        f"windows covering {lo:.2f}-{hi:.2f}' would be e.g. "
        f"{window_sizes_for(lo, hi, half_width_factor)}"
    )


def config_size_range(bubbles: dict) -> tuple[tuple[float, float], float, tuple[int, int]]:
    """MajAxis range (arcmin), pixel (arcsec) and field shape (pixels) known at config time
    from the ``bubbles`` config section: the mock's drawn range for ``simulate`` (MWP DR2's
    when it places bubbles at catalogue positions), the MWP DR2 clear range at GLIMPSE's 1.2"
    on a 3° x 2° field otherwise."""
    src = bubbles["source"]
    if src == "simulate":
        sim = bubbles["simulate"]
        pix = float(sim["pixel_arcsec"])
        shape = (
            int(round(float(sim["height_deg"]) * 3600 / pix)),
            int(round(float(sim["width_deg"]) * 3600 / pix)),
        )
        if sim.get("positions_from"):
            return MWP_DR2_CLEAR_MAJAXIS, pix, shape
        return (
            (float(sim["min_majaxis_arcmin"]), float(sim["max_majaxis_arcmin"])),
            pix,
            shape,
        )
    return MWP_DR2_CLEAR_MAJAXIS, 1.2, (6000, 9000)


def window_sizes(bubbles: dict) -> tuple[list[float], bool]:
    """Window sides (arcmin) of the ``bubbles`` config section and whether they were given.

    ``bubbles.windows.sizes_arcmin`` is a list (every source), a mapping source -> list (e.g.
    the mock's own sides under ``simulate``), or null; where no list applies to
    ``bubbles.source`` the sides come from the bubble size range of the source
    (:func:`config_size_range`: the catalogue's for download and local, the mock's drawn
    range for simulate) by :func:`window_sizes_for`.
    """
    given = bubbles["windows"]["sizes_arcmin"]
    if isinstance(given, dict):
        given = given.get(bubbles["source"])
    if given is not None:
        return [float(s) for s in given], True
    (lo, hi), _, _ = config_size_range(bubbles)
    return window_sizes_for(lo, hi, bubbles["negatives"]["half_width_factor"]), False


def check_config_scales(bubbles: dict, n: int = 200, check: bool = True) -> list[float]:
    """The window sides of :func:`window_sizes`; given ones are checked (``check``) with
    :func:`check_scales` on ``n`` log-spaced sizes of :func:`config_size_range` (run when the
    workflow reads its config). Sides derived from the size range cover it by construction."""
    sizes, given = window_sizes(bubbles)
    if not (given and check):
        return sizes
    (lo, hi), pix, shape = config_size_range(bubbles)
    check_scales(
        np.geomspace(lo, hi, n),
        sizes,
        pix,
        shape,
        bubbles["negatives"]["half_width_factor"],
        bubbles["windows"]["box_scale"],
        8,
        what=f"bubble sizes {lo}-{hi}' of bubbles.source {bubbles['source']}",
    )
    return sizes


def check_catalog_scales(
    catalog,
    windows: dict,
    pixel_arcsec: float,
    field_shape,
    half_width_factor,
    where: str = "catalogue",
) -> None:
    """:func:`check_scales` on the clear bubbles of a catalogue table (``MajAxis``, ``CLEAR``)
    with the ``bubbles.windows`` config section."""
    maj = np.asarray(catalog["MajAxis"], float)[np.asarray(catalog["CLEAR"], bool)]
    if len(maj):
        check_scales(
            maj,
            windows["sizes_arcmin"],
            pixel_arcsec,
            field_shape,
            half_width_factor,
            windows["box_scale"],
            what=f"{where}: clear bubbles",
        )


def framing_windows(
    x0,
    y0,
    size,
    boxes,
    maj_px,
    half_width_factor=HALF_WIDTH_FACTOR,
    box_scale: float = BOX_SCALE,
    field_side=10**9,
) -> np.ndarray:
    """Windows ``(x0, y0, size)`` that frame a bubble at a trained scale (boolean per window):
    the bubble's box centre lies in the window (as :func:`skydetect.bubbles.windows.boxes_in_window`
    counts it) and the window side lies within its crop sides (:func:`crop_side_range`).
    ``boxes`` (K, 4) field pixel boxes, ``maj_px`` (K,) their MajAxis in pixels."""
    x0, y0, size = (np.asarray(a, np.int64).reshape(-1) for a in (x0, y0, size))
    out = np.zeros(len(x0), bool)
    b = np.asarray(boxes, float).reshape(-1, 4)
    if not len(b) or not len(x0):
        return out
    cx, cy = box_centres(b)
    lo, hi = crop_side_range(
        np.asarray(maj_px, float).reshape(-1), half_width_factor, box_scale, field_side
    )
    for k in range(len(b)):  # per bubble: bounded memory on fields of many windows
        out |= (
            (cx[k] >= x0)
            & (cx[k] < x0 + size)
            & (cy[k] >= y0)
            & (cy[k] < y0 + size)
            & (size >= lo[k])
            & (size <= hi[k])
        )
    return out
