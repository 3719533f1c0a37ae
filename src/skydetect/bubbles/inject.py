"""Recall by injection: synthetic bubbles painted into a field, detection re-run on it.

A field the detector runs on (mock, local or downloaded; any aligned 8 µm + 24 µm pair) has no
truth beyond the catalogue's own incompleteness. Its recall is measured instead on synthetic
bubbles of known MajAxis and contrast painted into it: each *pass* paints ``per_pass``
bubbles into a copy of the field, at random positions inside the coverage, away from every
catalogue bubble, every existing detection and each other, re-runs the detector on the
windows that see them, and counts an injection as recovered when the evaluation's one-to-one
matching (:func:`skydetect.bubbles.evaluate.iou_matches`) pairs it with a detection at
IoU >= ``iou_threshold``. Bubbles of a pass cycle through the MajAxis x contrast cells, so
the passes of a field fill the grid evenly. The recall per cell with its Clopper-Pearson
interval is :mod:`skydetect.bubbles.injection_table`.

One bubble is painted by the mock's model (:mod:`skydetect.sky.spitzer`: an 8 µm ring
enclosing 24 µm emission for a clear bubble, a ring without 24 µm otherwise) through the one
adapter :func:`paint_bubble`. ``contrast`` is the painted 8 µm ring's peak over the median 8 µm
of the field in the bubble's box; ``strength_24um`` the painted 24 µm peak over the median
24 µm there (both before the beam).
"""

from __future__ import annotations

import logging

import numpy as np
from astropy.table import Table, vstack
from scipy import ndimage

from skydetect.sky import spitzer
from skydetect.sky.spitzer import FWHM_TO_SIGMA

from .catalog import BOX_SCALE, wrap_glon
from .evaluate import iou_matches
from .ssd.boxes import intersection, iou

log = logging.getLogger(__name__)

MIN_COVERAGE = 0.95  # finite 8 µm in at least this fraction of an injected bubble's box
ECC_RANGE = (0.3, 0.75)  # eccentricity of the injected ellipses (the mock's range)
CONTRAST_DEFINITION = "peak of the painted 8 um ring / median 8 um in the bubble's box"
TRIES = 4000  # random positions tried per bubble before it is left out of the pass
BOX_COLUMNS = ("BOX_X0", "BOX_Y0", "BOX_X1", "BOX_Y1")  # pixel box of an injection


def paint_bubble(img8, img24, x, y, majaxis_px, contrast, strength24, clear, rng, *,
                 minaxis_px=None, theta_deg=0.0, beam_px=(0.0, 0.0)):  # fmt: skip
    """Add one bubble centred on pixel (x, y) (0-based pixel centres) to ``img8``/``img24``.

    The mock's own bubble model (:func:`skydetect.sky.spitzer.paint_bubble`): a clear bubble
    is its ``ring`` kind (a closed 8 µm shell enclosing 24 µm emission), an unclear one its
    ``ring_no24``. The 8 µm shell peaks at ``contrast`` x the median 8 µm of the field under
    the stamp, the 24 µm interior of a clear bubble at ``strength24`` x the median 24 µm
    there; the stamps are smoothed by the beams (``beam_px``: 8 µm, 24 µm FWHM in pixels)
    before they are added. Returns the two local medians; a band without a positive median
    is left as is.
    """
    a = float(majaxis_px)
    sig8, sig24 = (float(f) * FWHM_TO_SIGMA for f in beam_px)
    r = int(np.ceil(1.6 * a + 4 + 3 * max(sig8, sig24)))
    ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    ny, nx = img8.shape
    y0, y1, x0, x1 = max(iy - r, 0), min(iy + r + 1, ny), max(ix - r, 0), min(ix + r + 1, nx)
    crop = np.s_[y0 - (iy - r) : y1 - (iy - r), x0 - (ix - r) : x1 - (ix - r)]
    medians = []
    for img in (img8, img24):
        finite = img[y0:y1, x0:x1][np.isfinite(img[y0:y1, x0:x1])]
        medians.append(float(np.median(finite)) if finite.size else float("nan"))
    size = 2 * r + 1
    c8, c24 = np.zeros((size, size)), np.zeros((size, size))
    levels = [m if m > 0 else 0.0 for m in medians]
    spitzer.paint_bubble(
        c8, c24, r + (x - ix), r + (y - iy), a, contrast, strength24 if clear else 0.0,
        clear, rng, kind="ring" if clear else "ring_no24", min_px=minaxis_px,
        theta_deg=theta_deg, level8=levels[0], level24=levels[1],
    )  # fmt: skip
    for img, stamp, sigma, med in ((img8, c8, sig8, medians[0]), (img24, c24, sig24, medians[1])):
        if not med > 0:  # no emission to scale by (or no such band): left unpainted
            continue
        if sigma > 0:
            stamp = ndimage.gaussian_filter(stamp, sigma)
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] + stamp[crop].astype(img.dtype)
    return tuple(medians)


def grid_cells(majaxis_arcmin, contrast) -> np.ndarray:
    """(N, 2) MajAxis (arcmin) x contrast cells, MajAxis slowest."""
    m, c = np.meshgrid(
        np.asarray(majaxis_arcmin, float), np.asarray(contrast, float), indexing="ij"
    )
    return np.column_stack([m.ravel(), c.ravel()])


def pass_cells(cells: np.ndarray, per_pass: int, n_pass: int) -> np.ndarray:
    """The cells of pass ``n_pass``: the grid walked cyclically across passes."""
    return cells[(n_pass * per_pass + np.arange(per_pass)) % len(cells)]


def _coverage_table(valid: np.ndarray) -> np.ndarray:
    s = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1))
    s[1:, 1:] = np.cumsum(np.cumsum(valid, axis=0), axis=1)
    return s


def _covered(table: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Fraction of covered pixels in each (integer-rounded) box, from a summed-area table."""
    x0, y0 = np.floor(boxes[:, 0]).astype(int), np.floor(boxes[:, 1]).astype(int)
    x1, y1 = np.ceil(boxes[:, 2]).astype(int), np.ceil(boxes[:, 3]).astype(int)
    n = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    return n / np.maximum((x1 - x0) * (y1 - y0), 1)


def place_boxes(half, shape, valid, avoid, rng, separation: float = 0.1, tries: int = TRIES):
    """Centres (x, y; 0-based pixel centres) for square boxes of half-sides ``half`` (px).

    Every box lies inside the (H, W) field with >= ``MIN_COVERAGE`` of ``valid`` pixels, and,
    grown by ``separation`` x its side on every side, meets neither a box of ``avoid`` (N, 4)
    nor another placed box. Largest first; a box that finds no place in ``tries`` random
    positions gets NaN (left out of the pass).
    """
    h, w = shape
    half = np.asarray(half, float)
    placed = [np.asarray(avoid, float).reshape(-1, 4)]
    table = _coverage_table(np.asarray(valid, bool))
    xy = np.full((len(half), 2), np.nan)
    for i in np.argsort(-half, kind="stable"):
        hs = half[i]
        if 2 * hs >= min(h, w):
            continue
        c = rng.uniform([hs, hs], [w - hs, h - hs], size=(tries, 2))
        boxes = np.column_stack([c - hs, c + hs])
        cand = np.flatnonzero(_covered(table, boxes) >= MIN_COVERAGE)
        others = np.concatenate(placed)
        if len(others) and len(cand):
            grown = boxes[cand] + np.array([-1, -1, 1, 1]) * (2 * hs * separation)
            cand = cand[~(intersection(grown, others) > 0).any(axis=1)]
        if len(cand):
            j = int(cand[0])
            xy[i] = c[j] - 0.5  # box-centre (pixel edges) -> 0-based pixel centre
            placed.append(boxes[j : j + 1])
    return xy


def windows_near(windows, boxes, margin: float = 1.0):
    """The windows ``(x0, y0, size)`` meeting any of ``boxes`` grown by ``margin`` x their side
    on every side: every window whose boxes could match, or suppress a match of, a box."""
    x0, y0, size = (np.asarray(a) for a in windows)
    b = np.asarray(boxes, float).reshape(-1, 4)
    if len(b) == 0:
        return x0[:0], y0[:0], size[:0]
    side = (b[:, 2:] - b[:, :2]).max(axis=1, keepdims=True)
    grown = np.column_stack([b[:, :2] - margin * side, b[:, 2:] + margin * side])
    win = np.column_stack([x0, y0, x0 + size, y0 + size]).astype(float)
    keep = (intersection(win, grown) > 0).any(axis=1)
    return x0[keep], y0[keep], size[keep]


def inject_pass(data, wcs, pixel_arcsec, cells, avoid, rng, *, box_scale=BOX_SCALE,
                strength24=2.0, separation=0.1, beam_px=(0.0, 0.0)):  # fmt: skip
    """One pass: ``cells`` (N, 2) bubbles placed and painted into a copy of ``data`` (2, H, W:
    24 µm, 8 µm). Returns ``(image, table)``, the table one row per bubble painted (centre,
    shape, box of the catalogue's convention (square of +-``box_scale`` MajAxis); bubbles
    that found no place or no positive 8 µm level are left out)."""
    img = np.array(data, dtype=np.float32, copy=True)
    maj = cells[:, 0]
    half = box_scale * maj * 60.0 / pixel_arcsec
    xy = place_boxes(half, img.shape[1:], np.isfinite(img[1]), avoid, rng, separation)
    ecc = rng.uniform(*ECC_RANGE, len(cells))
    theta = rng.uniform(0.0, 180.0, len(cells))
    painted = np.zeros(len(cells), bool)
    for i in np.flatnonzero(np.isfinite(xy[:, 0])):
        a = maj[i] * 60.0 / pixel_arcsec
        med8, _ = paint_bubble(
            img[1], img[0], xy[i, 0], xy[i, 1], a, cells[i, 1], strength24, True, rng,
            minaxis_px=a * np.sqrt(1 - ecc[i] ** 2), theta_deg=theta[i], beam_px=beam_px,
        )  # fmt: skip
        painted[i] = med8 > 0
    t = Table()
    sky = wcs.celestial.pixel_to_world(xy[painted, 0], xy[painted, 1]).galactic
    t["GLON"], t["GLAT"] = wrap_glon(np.asarray(sky.l.deg, float)), np.asarray(sky.b.deg, float)
    t["X"], t["Y"] = xy[painted, 0], xy[painted, 1]
    t["MajAxis"] = maj[painted]
    t["MinAxis"] = maj[painted] * np.sqrt(1 - ecc[painted] ** 2)
    t["theta"] = theta[painted]
    t["CONTRAST"] = cells[painted, 1]
    t["STRENGTH_24UM"] = np.full(int(painted.sum()), float(strength24))
    half_p = half[painted][:, None]
    centre = np.column_stack([t["X"], t["Y"]]) + 0.5
    box = np.column_stack([centre - half_p, centre + half_p]).reshape(-1, 4)
    for k, col in enumerate(BOX_COLUMNS):  # scalar columns: an empty table round-trips in ECSV
        t[col] = box[:, k]
    log.info("pass: %d of %d bubbles placed and painted", len(t), len(cells))
    return img, t


def injection_boxes(table: Table) -> np.ndarray:
    """The (N, 4) pixel boxes ``x0, y0, x1, y1`` of an injection table (``BOX_COLUMNS``)."""
    if not len(table):
        return np.zeros((0, 4))
    return np.column_stack([np.asarray(table[c], float) for c in BOX_COLUMNS])


def recover(table: Table, pred, scores, iou_threshold: float) -> None:
    """Mark the injections of ``table`` matched one-to-one (the evaluation's matching) by the
    detections ``pred`` (N, 4) with ``scores``: ``FOUND``, ``SCORE`` and ``IOU`` of the match."""
    boxes = injection_boxes(table)
    pred = np.asarray(pred, float).reshape(-1, 4)
    scores = np.asarray(scores, float).reshape(-1)
    m = iou_matches(pred, scores, boxes, iou_threshold)
    found = m.any(axis=1)
    score, overlap = np.full(len(boxes), np.nan), np.full(len(boxes), np.nan)
    t, p = np.nonzero(m)
    score[t] = scores[p]
    overlap[t] = iou(boxes[t], pred[p]).diagonal() if len(t) else overlap[t]
    table["FOUND"], table["SCORE"], table["IOU"] = found, score, overlap


def inject_field(data, wcs, pixel_arcsec, detect, windows, cells, *, per_pass, passes, avoid,
                 rng, iou_threshold=0.5, field="", **paint):  # fmt: skip
    """Every pass of one field: inject, detect on the windows near the injections (``detect``
    is ``detect(image, windows) -> (boxes, scores)`` at the operating threshold), match.
    Returns one table of all injections with ``PASS``, ``FIELD`` and the match columns."""
    tables = []
    for n in range(passes):
        img, t = inject_pass(
            data, wcs, pixel_arcsec, pass_cells(cells, per_pass, n), avoid, rng, **paint
        )
        near = windows_near(windows, injection_boxes(t))
        log.info("pass %d: detection on %d of %d windows", n, len(near[0]), len(windows[0]))
        pred, scores = detect(img, near) if len(near[0]) else (np.zeros((0, 4)), np.zeros(0))
        recover(t, pred, scores, iou_threshold)
        t["PASS"] = np.full(len(t), n, int)
        t["FIELD"] = np.full(len(t), field, dtype=f"<U{max(len(field), 1)}")
        tables.append(t)
        log.info("pass %d: %d of %d injections recovered", n, int(t["FOUND"].sum()), len(t))
    return vstack(tables, metadata_conflicts="silent") if tables else Table()


def check_inject_config(inject: dict) -> None:
    """The ``bubbles.inject`` grids strictly ascending (checked when the workflow reads its
    config, naming the key)."""
    for key in ("majaxis_arcmin", "contrast"):
        g = np.asarray(inject[key], float)
        if (np.diff(g) <= 0).any():
            raise ValueError(
                f"config key 'bubbles.inject.{key}' must be strictly ascending, got {list(g)}"
            )
