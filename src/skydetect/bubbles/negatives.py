"""Negative (non-bubble) windows: sampling from the masked fields, grouping, reading.

Sampling (reference: 3000 windows per field): the window half-width is k·MajAxis with
ln(MajAxis [px]) drawn from a normal fitted to the training fields' clear bubbles and k
uniform in ``half_width_factor`` (the bubble crops' range), so negatives have the crops'
scales. The centre is uniform over the field; a window is rejected if it leaves the field,
touches a catalogue-bubble disc (the masked field's ``mask``), has a valid (finite in every
band) fraction below ``min_valid_fraction`` (saturated cores and coverage edges are allowed
in small amounts: the preprocessing fills them with the local background, as at inference)
or is flat (standard deviation below ``flat_min_std`` MJy/sr in a band). Checks use
summed-area tables, so a draw costs O(1).

The preprocessed windows are written to HDF5 a chunk at a time and read back lazily
(:class:`NegativeInputs`: only the rows of a batch are read), so neither sampling nor
training holds every negative of every field in memory.

Grouping: :mod:`skydetect.bubbles.negative_groups`.
"""

from __future__ import annotations

import logging

import h5py
import numpy as np
from astropy.table import Table

from skydetect.bubbles.catalog import HALF_WIDTH_FACTOR
from skydetect.bubbles.window_stream import WindowStream
from skydetect.io.atomic import atomic_path
from skydetect.io.spitzer import wrap_glon

log = logging.getLogger(__name__)

NEG_STAGE = 73  # seed component of negative sampling


def fit_lognormal(maj_px: np.ndarray) -> tuple[float, float]:
    """(mu, sigma) of ln(MajAxis in pixels)."""
    v = np.log(np.asarray(maj_px, float))
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no bubble sizes to fit the negative-window size distribution")
    return float(v.mean()), float(v.std()) if v.size > 1 else 0.5


def _sat(a: np.ndarray) -> np.ndarray:
    """Summed-area table with a leading row/column of zeros."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    s[1:, 1:] = np.cumsum(np.cumsum(a, axis=0), axis=1)
    return s


def _box_sum(s: np.ndarray, x0, y0, size) -> np.ndarray:
    return s[y0 + size, x0 + size] - s[y0, x0 + size] - s[y0 + size, x0] + s[y0, x0]


def sample_windows(
    data: np.ndarray,
    rng: np.random.Generator,
    n: int,
    mu: float,
    sigma: float,
    *,
    half_width_factor=HALF_WIDTH_FACTOR,
    min_size_px: int = 16,
    flat_min_std: float = 0.05,
    max_tries_factor: int = 50,
    min_valid_fraction: float = 1.0,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random valid square windows (x0, y0, size) of a (C, H, W) field; may return fewer than n.

    ``mask`` (H, W) bool: pixels no window may touch (catalogue-bubble discs)."""
    c, h, w = data.shape
    finite = np.isfinite(data).all(axis=0)
    bad_sat = _sat(~finite)
    mask_sat = _sat(np.asarray(mask, bool)) if mask is not None else None
    sats = []
    for ch in range(c):
        x = np.where(np.isfinite(data[ch]), data[ch], 0.0).astype(np.float64)
        x = x - np.median(x[np.isfinite(data[ch])]) if np.isfinite(data[ch]).any() else x
        sats.append((_sat(x), _sat(x * x), _sat(np.isfinite(data[ch]))))
    del finite
    kept_x, kept_y, kept_s = [], [], []
    tries, n_kept = 0, 0
    batch = max(4 * n, 256)
    while n_kept < n and tries < n * max_tries_factor:
        maj = np.exp(rng.normal(mu, sigma, batch))
        k = rng.uniform(half_width_factor[0], half_width_factor[1], batch)
        size = np.maximum(np.rint(2 * k * maj), min_size_px).astype(np.int64)
        cx, cy = rng.uniform(0, w, batch), rng.uniform(0, h, batch)
        x0 = np.rint(cx - size / 2).astype(np.int64)
        y0 = np.rint(cy - size / 2).astype(np.int64)
        tries += batch
        ok = (x0 >= 0) & (y0 >= 0) & (x0 + size <= w) & (y0 + size <= h)
        x0, y0, size = x0[ok], y0[ok], size[ok]
        npix = size.astype(float) ** 2
        ok = 1.0 - _box_sum(bad_sat, x0, y0, size) / npix >= min_valid_fraction - 1e-12
        if mask_sat is not None:
            ok &= _box_sum(mask_sat, x0, y0, size) == 0
        for s1, s2, sn in sats:
            nn = np.maximum(_box_sum(sn, x0, y0, size), 1)
            mean = _box_sum(s1, x0, y0, size) / nn
            var = _box_sum(s2, x0, y0, size) / nn - mean**2
            ok &= np.sqrt(np.maximum(var, 0.0)) >= flat_min_std
        x0, y0, size = x0[ok], y0[ok], size[ok]
        take = min(n - n_kept, len(x0))
        kept_x.append(x0[:take])
        kept_y.append(y0[:take])
        kept_s.append(size[:take])
        n_kept += take
    if n_kept < n:
        log.warning("only %d of %d negative windows found after %d draws", n_kept, n, tries)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(kept_x), cat(kept_y), cat(kept_s)


def write_negatives(path, inputs, x0, y0, size, glon, glat, attrs: dict, chunk: int = 256):
    """Write a field's negatives (see docs/dataflow.md) atomically. ``inputs`` may be an
    array or an array-like such as :class:`~skydetect.bubbles.window_stream.WindowStream`: it
    is read and written ``chunk`` windows at a time."""

    n = len(inputs)
    shape = tuple(np.shape(inputs)[1:]) if n else (0, 0, 0)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        ds = h5.create_dataset(
            "inputs",
            shape=(n, *shape),
            dtype=np.float32,
            compression="gzip",
            compression_opts=1,
            chunks=(1, *shape) if n else None,
        )
        for start in range(0, n, chunk):
            ds[start : start + chunk] = np.asarray(inputs[start : start + chunk], np.float32)
        for key, val in (("x0", x0), ("y0", y0), ("size", size)):
            h5.create_dataset(key, data=np.asarray(val, np.int32))
        h5.create_dataset("glon", data=np.asarray(glon, np.float64))
        h5.create_dataset("glat", data=np.asarray(glat, np.float64))
        for key, value in attrs.items():
            h5.attrs[key] = value


def read_negative_file(path, inputs: bool = True) -> dict:
    """A negatives file as a dict of arrays (``inputs`` left out with ``inputs=False``)."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: cannot open negatives file: {err}") from err
    with h5:
        missing = [k for k in ("inputs", "x0", "y0", "size") if k not in h5]
        if missing:
            raise ValueError(f"{path}: negatives file lacks dataset(s) {', '.join(missing)}")
        out = {k: h5[k][()] for k in h5.keys() if inputs or k != "inputs"}
        out["attrs"] = dict(h5.attrs)
        out["n"] = int(h5["inputs"].shape[0])
    return out


class NegativeInputs:
    """The negative windows of several field files as one lazy array ``(N, S, S, C)``.

    ``inputs[index]`` reads only those rows (one HDF5 read per file touched); row ``i`` is
    row ``rows[i]`` of file ``files[i]``.
    """

    def __init__(self, paths, files: np.ndarray, rows: np.ndarray, shape: tuple):
        self.paths = [str(p) for p in paths]
        self.files = np.asarray(files, np.int64)
        self.rows = np.asarray(rows, np.int64)
        self.shape = (len(self.rows), *shape)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        idx = np.arange(len(self))[key]
        scalar = np.ndim(idx) == 0
        idx = np.atleast_1d(idx)
        out = np.empty((len(idx), *self.shape[1:]), np.float32)
        for f in np.unique(self.files[idx]):
            sel = np.flatnonzero(self.files[idx] == f)
            rows = self.rows[idx[sel]]
            order = np.argsort(rows, kind="stable")
            uniq, inverse = np.unique(rows[order], return_inverse=True)
            with h5py.File(self.paths[f], "r") as h5:
                block = h5["inputs"][uniq]  # h5py reads increasing unique indices
            out[sel[order]] = block[inverse]
        return out[0] if scalar else out

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)


def read_negatives(paths, groups_path, *, keep_only: bool = True) -> dict:
    """The negatives of the given field files with their group labels and weights.

    Returns a dict: ``inputs`` (a lazy :class:`NegativeInputs` (N, S, S, C): rows are read
    from the files when indexed), ``x0 y0 size`` (N,), ``field`` (N,) str, ``index`` (row in
    the field file), ``group``, ``keep``, ``weight``. With ``keep_only`` the windows of dropped
    groups are left out.
    """
    table = Table.read(groups_path, format="ascii.ecsv")
    for col in ("FIELD", "INDEX", "GROUP", "KEEP", "WEIGHT"):
        if col not in table.colnames:
            raise ValueError(f"{groups_path}: lacks column {col}")
    lookup = {
        (str(f), int(i)): r
        for r, (f, i) in enumerate(zip(table["FIELD"], table["INDEX"], strict=True))
    }
    keys = ("x0", "y0", "size", "field", "index", "group", "keep", "weight", "file")
    parts = {k: [] for k in keys}
    shape = None
    for k, path in enumerate(paths):
        d = read_negative_file(path, inputs=False)
        with h5py.File(path, "r") as h5:
            shape = tuple(h5["inputs"].shape[1:]) if d["n"] else shape
        field = str(d["attrs"].get("field", ""))
        rows = []
        for i in range(len(d["x0"])):
            if (field, i) not in lookup:
                raise ValueError(
                    f"{groups_path}: no group for window {i} of field {field} ({path})"
                )
            rows.append(lookup[(field, i)])
        rows = np.asarray(rows, int)
        sel = np.ones(len(rows), bool)
        if keep_only and len(rows):
            sel = np.asarray(table["KEEP"], bool)[rows]
        for key in ("x0", "y0", "size"):
            parts[key].append(d[key][sel])
        parts["field"].append(np.full(sel.sum(), field))
        parts["index"].append(np.arange(len(rows))[sel])
        parts["file"].append(np.full(sel.sum(), k))
        parts["group"].append(np.asarray(table["GROUP"], int)[rows][sel])
        parts["keep"].append(np.asarray(table["KEEP"], bool)[rows][sel])
        parts["weight"].append(np.asarray(table["WEIGHT"], float)[rows][sel])
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    out["inputs"] = NegativeInputs(
        paths, out.pop("file").astype(int), out["index"].astype(int), shape or (0, 0, 0)
    )
    return out


def size_fit_bubbles(catalog, train_fields) -> np.ndarray:
    """MajAxis (arcmin) of the bubbles the negative-window size fit uses: the clear bubbles
    of the training fields ``train_fields`` (catalogue column ``FIELD``; all their bubbles
    if fewer than two are clear). Validation and test bubbles never enter the fit."""
    if "FIELD" not in catalog.colnames:
        raise ValueError("bubble catalogue lacks column FIELD (the negative-size fit needs it)")
    train = np.isin(np.asarray(catalog["FIELD"]).astype(str), [str(f) for f in train_fields])
    if not train.any():
        raise ValueError(
            "no catalogue bubble in the training fields "
            f"({', '.join(map(str, train_fields))}) for the negative-window size fit"
        )
    clear = train & np.asarray(catalog["CLEAR"], bool)
    return np.asarray(catalog["MajAxis"], float)[clear if clear.sum() >= 2 else train]


def negatives_for_field(
    field, catalog, *, train_fields, seed: int, neg: dict, preprocess: dict
) -> dict:
    """Sample the negative windows of one masked field; their inputs are streamed.

    ``neg`` is ``config["bubbles"]["negatives"]``, ``preprocess`` the preprocessing keys.
    Sizes: log-normal fitted to the clear bubbles of the training fields ``train_fields``
    (:func:`size_fit_bubbles`), in pixels of this field.
    Returns the arrays and attrs of :func:`write_negatives`, ``inputs`` a
    :class:`~skydetect.bubbles.window_stream.WindowStream`.
    """
    maj = size_fit_bubbles(catalog, train_fields)
    mu, sigma = fit_lognormal(maj * 60.0 / field.pixel_arcsec)
    code = int(field.field[:5]) if field.field[:5].isdigit() else sum(map(ord, field.field))
    rng = np.random.default_rng([seed, NEG_STAGE, code])
    x0, y0, size = sample_windows(
        field.data,
        rng,
        int(neg["per_field"]),
        mu,
        sigma,
        half_width_factor=neg["half_width_factor"],
        min_size_px=int(neg["min_size_px"]),
        flat_min_std=float(neg["flat_min_std"]),
        max_tries_factor=int(neg["max_tries_factor"]),
        min_valid_fraction=float(neg["min_valid_fraction"]),
        mask=field.mask,
    )
    inputs = WindowStream(field.data, x0, y0, size, **preprocess)
    glon, glat = field.wcs.pixel_to_world_values(x0 + size / 2 - 0.5, y0 + size / 2 - 0.5)
    attrs = {
        "field": field.field,
        "input_size": int(preprocess["input_size"]),
        "channels": ["24um", "8um"],
        "pixel_arcsec": float(field.pixel_arcsec),
        "lognormal_mu_px": mu,
        "lognormal_sigma": sigma,
        "size_fit_bubbles": int(len(maj)),
    }
    return {
        "inputs": inputs,
        "x0": x0,
        "y0": y0,
        "size": size,
        "glon": wrap_glon(glon),
        "glat": np.asarray(glat, float),
        "attrs": attrs,
    }
