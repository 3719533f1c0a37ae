"""Whole-mosaic bubble detection: multi-scale sliding windows, SSD, NMS, merging.

The windows ``(x0, y0, size)`` come from :func:`skydetect.bubbles.windows.sliding_windows`
(no truncated or stretched edge windows; with ``bubbles.windows.edge_pad`` the edge windows
reach past the field, over no coverage) and go through the shared preprocessing
(:mod:`skydetect.bubbles.preprocess`). A field reports the detections centred in it: those
centred outside belong to the neighbouring field. Boxes predicted
in window-input coordinates are mapped back to field pixels with the exact inverse of that
crop (:func:`skydetect.bubbles.windows.input_to_field`), suppressed within the window
(``window_nms_iou``), then merged across windows and scales at ``merge_iou`` (0.3 in the
reference) by NMS (``merge: nms``, the reference's) or by weighted box fusion (``merge: wbf``:
overlapping boxes averaged, weighted by score; :func:`skydetect.bubbles.ssd.boxes.fuse`).
Boxes are corner form ``(x_min, y_min, x_max, y_max)`` in field pixel-edge coordinates (see
docs/dataflow.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from astropy.table import Table
from tqdm import tqdm

from skydetect.io.spitzer import wrap_glon
from skydetect.schema import schema_defaults

from .preprocess import FieldPreprocessor
from .ssd.boxes import fuse, nms
from .ssd.model import predict_boxes
from .window_stream import WindowStream
from .windows import centres_inside

log = logging.getLogger(__name__)
_DEFAULTS = schema_defaults("bubbles.detect")


@dataclass
class DetectSettings:
    """Post-processing of the raw SSD outputs (``bubbles.detect`` in the config)."""

    min_score: float = _DEFAULTS["min_score"]  # boxes below this are dropped before any NMS
    window_nms_iou: float = _DEFAULTS["window_nms_iou"]  # NMS inside one window
    max_per_window: int = _DEFAULTS["max_per_window"]  # boxes kept per window after NMS
    merge_iou: float = _DEFAULTS["merge_iou"]  # merging across windows and scales
    merge: str = _DEFAULTS["merge"]  # nms (keep the best box) | wbf (fuse overlapping boxes)
    batch_size: int = _DEFAULTS["batch_size"]

    @classmethod
    def from_config(cls, cfg: dict) -> DetectSettings:
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


def window_to_field(boxes_unit: np.ndarray, x0, y0, size) -> np.ndarray:
    """Boxes normalised to a window (0..1) -> field pixel-edge coordinates (exact inverse of the
    window crop: ``x = x0 + u * size``)."""
    b = np.asarray(boxes_unit, dtype=np.float64)
    off = np.array([x0, y0, x0, y0], dtype=np.float64)
    return off + b * float(size)


def window_detections(boxes_unit, scores, settings: DetectSettings):
    """Per-window NMS on one window's decoded boxes (normalised, clipped to the window)."""
    boxes = np.clip(np.asarray(boxes_unit, dtype=np.float64), 0.0, 1.0)
    scores = np.asarray(scores, dtype=np.float64)
    ok = (scores >= settings.min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return np.zeros((0, 4)), np.zeros(0)
    keep = nms(boxes[idx], scores[idx], settings.window_nms_iou, max_output=settings.max_per_window)
    return boxes[idx][keep], scores[idx][keep]


MERGES = ("nms", "wbf")


def merge_detections(boxes, scores, iou_threshold: float = 0.3, method: str = "nms"):
    """Merge boxes from overlapping windows and scales (field coordinates): ``nms`` keeps the
    best of each overlapping group, ``wbf`` fuses the group into its score-weighted mean."""
    if method not in MERGES:
        raise ValueError(f"bubbles.detect.merge: {method!r} is not one of {', '.join(MERGES)}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) == 0:
        return boxes, scores
    if method == "wbf":
        return fuse(boxes, scores, iou_threshold)
    keep = nms(boxes, scores, iou_threshold)
    return boxes[keep], scores[keep]


def detect_windows(
    model, priors, inputs, x0, y0, size, settings: DetectSettings, merge=True, field_shape=None
):
    """Detections of one field from preprocessed windows ``inputs`` (N, S, S, C) at positions
    ``x0, y0, size`` (N,). Returns ``(boxes_field, scores)``: merged across windows (best
    first), or with ``merge=False`` the per-window survivors only. With ``field_shape``
    (H, W), boxes centred outside the field are dropped (before the merge)."""
    all_b, all_s = [], []
    n = len(inputs)
    step = 4 * settings.batch_size  # network calls on chunks: bounded inputs and outputs
    for start in range(0, n, step):
        sl = slice(start, start + step)
        boxes, scores = predict_boxes(model, priors, inputs[sl], batch_size=settings.batch_size)
        for k, (b, s) in enumerate(zip(boxes, scores, strict=True)):
            i = start + k
            wb, ws = window_detections(b, s, settings)
            if len(wb):
                all_b.append(window_to_field(wb, x0[i], y0[i], size[i]))
                all_s.append(ws)
    if not all_b:
        return np.zeros((0, 4)), np.zeros(0)
    b, s = np.concatenate(all_b), np.concatenate(all_s)
    if field_shape is not None:
        inside = centres_inside(b, field_shape)
        b, s = b[inside], s[inside]
    return merge_detections(b, s, settings.merge_iou, settings.merge) if merge else (b, s)


def detect_field(
    model,
    priors,
    data,
    windows,
    preprocess,
    settings: DetectSettings,
    chunk: int = 256,
    progress: bool = False,
    threads: int = 1,
):
    """Detect bubbles over a whole field ``data`` (C, H, W).

    ``windows`` is ``(x0, y0, size)`` arrays. ``preprocess`` is the ``bubbles.preprocess``
    dict (the field is prepared once by
    :class:`~skydetect.bubbles.preprocess.FieldPreprocessor` and the windows are streamed
    from it), such a preprocessor already built, or a callable ``preprocess(data, x0, y0, size)`` returning one window's input.
    Windows go through the network ``chunk`` at a time: memory holds one chunk of inputs,
    never the field's whole window stack.
    """
    x0s, y0s, sizes = (np.asarray(a) for a in windows)
    n = len(x0s)
    prepared = isinstance(preprocess, FieldPreprocessor)
    shape = preprocess.shape if prepared else tuple(np.shape(data)[1:])
    if prepared:  # a field prepared by the caller
        stream = WindowStream(preprocess, x0s, y0s, sizes)

        def cut(sl):
            return stream[sl]
    elif callable(preprocess):
        def cut(sl):
            return np.stack(
                [preprocess(data, a, b, c) for a, b, c in zip(x0s[sl], y0s[sl], sizes[sl], strict=True)]
            ).astype(np.float32)
    else:
        stream = WindowStream(data, x0s, y0s, sizes, threads=threads, **preprocess)

        def cut(sl):
            return stream[sl]

    boxes, scores = [], []
    chunks = range(0, n, chunk)
    if progress:
        chunks = tqdm(chunks, desc="windows", unit="chunk", total=(n + chunk - 1) // chunk)
    for start in chunks:
        sl = slice(start, start + chunk)
        b, s = detect_windows(
            model, priors, cut(sl), x0s[sl], y0s[sl], sizes[sl], settings, False, shape
        )
        boxes.append(b)
        scores.append(s)
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0)
    return merge_detections(
        np.concatenate(boxes), np.concatenate(scores), settings.merge_iou, settings.merge
    )


CATALOG_COLUMNS = [
    "ID",
    "FIELD",
    "GLON",
    "GLAT",
    "WIDTH_ARCMIN",
    "HEIGHT_ARCMIN",
    "SIZE_ARCMIN",
    "SCORE",
    "X_MIN",
    "Y_MIN",
    "X_MAX",
    "Y_MAX",
]
BOX_COLUMNS = CATALOG_COLUMNS[8:12]


def detections_table(boxes, scores, wcs, pixel_arcsec: float, field: str, columns=None):
    """Catalogue of detections: sky centre (GLON in (-180, 180], GLAT; degrees) from the
    field WCS, box width/height and mean side in arcmin, score, and the field pixel box;
    then ``columns`` (name -> per-box values, e.g. ``COVER_24`` and ``FILLED`` of
    :func:`skydetect.bubbles.coverage.coverage_columns`)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    t = Table()
    t["ID"] = [f"{field}_{i:04d}" for i in range(len(boxes))]
    t["FIELD"] = np.full(len(boxes), field, dtype=f"<U{max(len(field), 1)}")
    if len(boxes):
        # pixel-edge centre -> 0-based WCS pixel centre coordinates
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 - 0.5
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 - 0.5
        sky = wcs.pixel_to_world(cx, cy).galactic
        glon, glat = wrap_glon(sky.l.deg), sky.b.deg
    else:
        glon = glat = np.zeros(0)
    t["GLON"] = np.asarray(glon, np.float64)
    t["GLAT"] = np.asarray(glat, np.float64)
    scale = float(pixel_arcsec) / 60.0
    t["WIDTH_ARCMIN"] = (boxes[:, 2] - boxes[:, 0]) * scale
    t["HEIGHT_ARCMIN"] = (boxes[:, 3] - boxes[:, 1]) * scale
    t["SIZE_ARCMIN"] = (t["WIDTH_ARCMIN"] + t["HEIGHT_ARCMIN"]) / 2
    t["SCORE"] = scores
    for k, name in enumerate(BOX_COLUMNS):
        t[name] = boxes[:, k]
    for name, values in (columns or {}).items():
        t[name] = np.asarray(values).reshape(len(boxes))
    for name in ("GLON", "GLAT"):
        t[name].unit = "deg"
    for name in ("WIDTH_ARCMIN", "HEIGHT_ARCMIN", "SIZE_ARCMIN"):
        t[name].unit = "arcmin"
    t.meta["comments"] = ["Bubble detections (SSD); X/Y: field pixel-edge box corners"]
    return t


def read_detections(path):
    """Boxes (N, 4) and scores of a detection catalogue written by :func:`detections_table`."""
    t = Table.read(path, format="ascii.ecsv")
    missing = [c for c in CATALOG_COLUMNS if c not in t.colnames]
    if missing:
        raise ValueError(f"{path}: detection catalogue lacks column(s) {', '.join(missing)}")
    boxes = np.column_stack([np.asarray(t[c], np.float64) for c in BOX_COLUMNS])
    return boxes.reshape(-1, 4), np.asarray(t["SCORE"], np.float64), t
