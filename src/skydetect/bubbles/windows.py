"""Window and box geometry of the bubble detector (the one home of these conventions).

Field arrays are ``data[channel, y, x]``. A box is ``(x_min, y_min, x_max, y_max)`` in
continuous pixel-edge coordinates: pixel (y, x) covers [x, x+1) × [y, y+1), so a 0-based WCS
pixel centre x_c is the point x_c + 0.5. A window ``(x0, y0, size)`` covers columns
x0..x0+size-1 and rows y0..y0+size-1. Window-input coordinates (the network's S × S image):
``u = (x - x0) * S / size``.

Sliding windows: for each side, starts -pad, -pad + stride, ... and a last window flush with
the far edge plus pad (shifted, never truncated), pad = ``edge_pad`` × size (rounded down).
With ``edge_pad`` 0 every window lies inside the field; with ``edge_pad`` > 0 the windows
of the edge rows and columns reach that far past the field, and a bubble cut by the field
edge is seen nearer a window's centre, as a neighbouring, overlapping survey field would
show it. Pixels outside the field are no coverage: NaN, filled like any other NaN
(:mod:`skydetect.bubbles.preprocess`). The validation/test window file holds the windows
with the boxes of the catalogue bubbles whose centre they contain, clipped to the window,
and the complete per-field truth.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from skydetect.bubbles.catalog import BOX_SCALE, bubble_boxes, in_field
from skydetect.io.atomic import atomic_path


def positions(n: int, size: int, stride: int, pad: int = 0) -> np.ndarray:
    """Starts of windows of ``size`` along an axis of length ``n``, from ``-pad``; the last one
    flush with ``n + pad``."""
    if size > n:
        raise ValueError(f"window size {size} exceeds the image side {n}")
    stride = max(int(stride), 1)
    pad = max(int(pad), 0)
    end = n - size + pad
    starts = list(range(-pad, end + 1, stride))
    if starts[-1] != end:
        starts.append(end)
    return np.asarray(starts, dtype=np.int64)


def sizes_to_pixels(sizes_arcmin, pixel_arcsec: float, shape: tuple[int, int]) -> np.ndarray:
    """Window sides in pixels (rounded, capped at the smaller field side, duplicates removed)."""
    px = np.rint(np.asarray(sizes_arcmin, float) * 60.0 / pixel_arcsec).astype(np.int64)
    px = np.clip(px, 1, min(shape))
    return np.unique(px)


def sliding_windows(
    shape: tuple[int, int], sizes_px, stride_fraction: float = 1 / 3, edge_pad: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All sliding windows (x0, y0, size) of the given sides over an (H, W) image, reaching
    up to ``edge_pad`` × size past its edges."""
    h, w = shape
    x0s, y0s, ss = [], [], []
    for size in np.atleast_1d(sizes_px):
        size = int(size)
        stride = max(int(round(size * stride_fraction)), 1)
        pad = int(np.floor(size * float(edge_pad) + 1e-9))
        ys, xs = positions(h, size, stride, pad), positions(w, size, stride, pad)
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        x0s.append(xx.ravel())
        y0s.append(yy.ravel())
        ss.append(np.full(xx.size, size, np.int64))
    return np.concatenate(x0s), np.concatenate(y0s), np.concatenate(ss)


def overhang(shape: tuple[int, int], x0, y0, size) -> int:
    """Pixels by which the windows reach past the (H, W) field at most (0: all inside)."""
    x0, y0, size = (np.asarray(a, np.int64).reshape(-1) for a in (x0, y0, size))
    if len(x0) == 0:
        return 0
    h, w = shape
    reach = [-x0.min(), -y0.min(), (x0 + size).max() - w, (y0 + size).max() - h]
    return int(max(0, *reach))


def reaches_past(shape: tuple[int, int], x0, y0, size) -> np.ndarray:
    """Windows that reach past the (H, W) field (edge windows; boolean mask)."""
    x0, y0, size = (np.asarray(a, np.int64).reshape(-1) for a in (x0, y0, size))
    h, w = shape
    return (x0 < 0) | (y0 < 0) | (x0 + size > w) | (y0 + size > h)


def centres_inside(boxes, shape: tuple[int, int]) -> np.ndarray:
    """Boxes whose centre lies in the (H, W) field (boolean mask)."""
    cx, cy = box_centres(boxes)
    h, w = shape
    return (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)


def box_centres(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    return (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2


def clip_boxes(boxes: np.ndarray, x0: float, y0: float, size: float) -> np.ndarray:
    """Boxes clipped to the window (field coordinates)."""
    b = np.asarray(boxes, float).reshape(-1, 4).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], x0, x0 + size)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], y0, y0 + size)
    return b


def boxes_in_window(boxes: np.ndarray, x0: int, y0: int, size: int):
    """Indices of the boxes whose centre lies in the window, and those boxes clipped to it."""
    cx, cy = box_centres(boxes)
    inside = (cx >= x0) & (cx < x0 + size) & (cy >= y0) & (cy < y0 + size)
    idx = np.flatnonzero(inside)
    return idx, clip_boxes(np.asarray(boxes, float).reshape(-1, 4)[idx], x0, y0, size)


def field_to_input(boxes, x0, y0, size, input_size) -> np.ndarray:
    """Field pixel-edge coordinates -> window-input pixel coordinates."""
    b = np.asarray(boxes, float).reshape(-1, 4)
    f = input_size / size
    return (b - np.array([x0, y0, x0, y0], float)) * f


def input_to_field(boxes, x0, y0, size, input_size) -> np.ndarray:
    """Window-input pixel coordinates -> field pixel-edge coordinates (inverse of the above)."""
    b = np.asarray(boxes, float).reshape(-1, 4)
    return b * (size / input_size) + np.array([x0, y0, x0, y0], float)


def make_windows(
    fields: dict, sizes_arcmin, stride_fraction: float, edge_pad: float = 0.0
) -> dict:
    """Windows and their boxes over several fields.

    ``fields[field]`` is a dict with ``shape`` (H, W), ``pixel_arcsec`` and the field's truth:
    ``boxes`` (K, 4) field coordinates, ``clear`` (K,), ``mwp`` (K,), ``glon glat maj_arcmin``.
    Returns the arrays of the window file (see :func:`write_windows`).
    """
    out = {k: [] for k in ("field", "x0", "y0", "size", "box_window", "boxes", "box_clear")}
    out["box_mwp"] = []
    n_windows = 0
    for name, f in fields.items():
        sizes_px = sizes_to_pixels(sizes_arcmin, f["pixel_arcsec"], f["shape"])
        x0s, y0s, ss = sliding_windows(f["shape"], sizes_px, stride_fraction, edge_pad)
        boxes = np.asarray(f["boxes"], float).reshape(-1, 4)
        for j, (x0, y0, s) in enumerate(zip(x0s, y0s, ss, strict=True)):
            idx, clipped = boxes_in_window(boxes, x0, y0, s)
            out["boxes"].append(clipped)
            out["box_window"].append(np.full(len(idx), n_windows + j, np.int64))
            out["box_clear"].append(np.asarray(f["clear"], bool)[idx])
            out["box_mwp"].append(np.asarray(f["mwp"]).astype(str)[idx])
        out["field"].append(np.full(len(x0s), name))
        out["x0"].append(x0s)
        out["y0"].append(y0s)
        out["size"].append(ss)
        n_windows += len(x0s)
    arrays = {
        "field": np.concatenate(out["field"]) if out["field"] else np.zeros(0, "U10"),
        "x0": np.concatenate(out["x0"] or [np.zeros(0)]).astype(np.int32),
        "y0": np.concatenate(out["y0"] or [np.zeros(0)]).astype(np.int32),
        "size": np.concatenate(out["size"] or [np.zeros(0)]).astype(np.int32),
        "box_window": np.concatenate(out["box_window"] or [np.zeros(0)]).astype(np.int64),
        "boxes": np.concatenate(out["boxes"] or [np.zeros((0, 4))]).astype(np.float32),
        "box_clear": np.concatenate(out["box_clear"] or [np.zeros(0)]).astype(bool),
        "box_mwp": np.concatenate(out["box_mwp"] or [np.zeros(0, "U1")]).astype(str),
    }
    arrays["truth"] = {
        name: {
            "boxes": np.asarray(f["boxes"], np.float32).reshape(-1, 4),
            "clear": np.asarray(f["clear"], bool),
            "mwp": np.asarray(f["mwp"]).astype(str),
            "glon": np.asarray(f["glon"], float),
            "glat": np.asarray(f["glat"], float),
            "maj_arcmin": np.asarray(f["maj_arcmin"], float),
            "shape": np.asarray(f["shape"], np.int64),
            "pixel_arcsec": float(f["pixel_arcsec"]),
        }
        for name, f in fields.items()
    }
    return arrays


_STR = h5py.string_dtype()


def write_windows(path: str | os.PathLike, arrays: dict, attrs: dict) -> None:
    """Write the window file via a temporary name in the same directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for key in ("x0", "y0", "size", "box_window", "boxes", "box_clear"):
            h5.create_dataset(key, data=arrays[key])
        h5.create_dataset("field", data=arrays["field"].astype(object), dtype=_STR)
        h5.create_dataset("box_mwp", data=arrays["box_mwp"].astype(object), dtype=_STR)
        grp = h5.create_group("truth")
        for name, t in arrays["truth"].items():
            g = grp.create_group(name)
            for key in ("boxes", "clear", "glon", "glat", "maj_arcmin", "shape"):
                g.create_dataset(key, data=t[key])
            g.create_dataset("mwp", data=t["mwp"].astype(object), dtype=_STR)
            g.attrs["pixel_arcsec"] = t["pixel_arcsec"]
        for key, value in attrs.items():
            h5.attrs[key] = value


def read_windows(path: str | os.PathLike) -> dict:
    """Read a window file: arrays as written, ``truth[field]`` dicts and ``attrs``."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: cannot open window file: {err}") from err
    with h5:
        missing = [k for k in ("field", "x0", "y0", "size", "boxes", "truth") if k not in h5]
        if missing:
            raise ValueError(f"{path}: window file lacks dataset(s) {', '.join(missing)}")
        out = {k: h5[k][()] for k in ("x0", "y0", "size", "box_window", "boxes", "box_clear")}
        out["field"] = h5["field"].asstr()[()].astype(str)
        out["box_mwp"] = h5["box_mwp"].asstr()[()].astype(str)
        out["truth"] = {}
        for name, g in h5["truth"].items():
            t = {k: g[k][()] for k in ("boxes", "clear", "glon", "glat", "maj_arcmin", "shape")}
            t["mwp"] = g["mwp"].asstr()[()].astype(str)
            t["pixel_arcsec"] = float(g.attrs["pixel_arcsec"])
            out["truth"][name] = t
        out["attrs"] = dict(h5.attrs)
    return out


def field_truth(field, catalog, box_scale: float = BOX_SCALE) -> dict:
    """The truth entry of :func:`make_windows` for one field: all catalogue bubbles in it."""
    sub = catalog[in_field(catalog, field.wcs, field.shape)]
    return {
        "shape": field.shape,
        "pixel_arcsec": field.pixel_arcsec,
        "boxes": bubble_boxes(sub, field.wcs, field.pixel_arcsec, box_scale),
        "clear": np.asarray(sub["CLEAR"], bool),
        "mwp": np.asarray(sub["MWP"]).astype(str),
        "glon": np.asarray(sub["GLON"], float),
        "glat": np.asarray(sub["GLAT"], float),
        "maj_arcmin": np.asarray(sub["MajAxis"], float),
    }
