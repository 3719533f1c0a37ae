"""What the bubble SSD trains and validates on: the crop generator, the kept negatives and the
preprocessed validation windows of each validation field (read by ``train_ssd`` and
``tune_ssd`` through :func:`load_all_data`).

The validation F2 that picks the epoch and the threshold is computed on a fixed sample of the
validation windows (:func:`validation_sample`): every window that frames a catalogue bubble
at a trained scale plus a seeded draw of ``bubbles.train.validation_background_windows`` of
the others, so that its cost does not grow with the fields' area; the final threshold check
uses every window."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skydetect.io.spitzer import read_field

from .catalog import BOX_SCALE, HALF_WIDTH_FACTOR, read_catalog
from .crops import BubbleCrops
from .negatives import read_negatives
from .scales import framing_windows
from .window_stream import WindowStream
from .windows import read_windows

log = logging.getLogger(__name__)


@dataclass
class ValidationField:
    """Preprocessed sliding windows of one validation field and its catalogue boxes."""

    name: str
    inputs: np.ndarray  # (N, S, S, C)
    x0: np.ndarray
    y0: np.ndarray
    size: np.ndarray
    truth: np.ndarray  # (K, 4) field pixel boxes
    clear: np.ndarray  # (K,) bool
    shape: tuple[int, int] | None = None  # (H, W): detections centred outside are dropped


def files_key(paths) -> list:
    """Name, size and modification time of input files: changes when an input is rewritten."""
    out = []
    for p in sorted(str(p) for p in paths):
        st = os.stat(p)
        out.append([p, st.st_size, st.st_mtime_ns])
    return out


VAL_STAGE = 81  # seed component of the validation sample


def validation_sample(
    windows: dict,
    n_background: int | None,
    seed: int,
    half_width_factor=HALF_WIDTH_FACTOR,
    box_scale=BOX_SCALE,
) -> dict[str, np.ndarray] | None:
    """Indices (per field, into that field's windows in file order) of the validation sample
    of a window file (:func:`skydetect.bubbles.windows.read_windows`): every window framing a
    catalogue bubble (clear or not) at a trained scale (:func:`.scales.framing_windows`) and
    ``n_background`` of the others over all fields, drawn without replacement from
    ``default_rng([seed, VAL_STAGE])``. None (every window is validated) when
    ``n_background`` is None or not fewer than the other windows.
    """
    if n_background is None:
        return None
    if int(n_background) < 0:
        raise ValueError(
            f"config: bubbles.train.validation_background_windows is {n_background} (>= 0 or null)"
        )
    fields = np.asarray(windows["field"]).astype(str)
    names = sorted(set(fields))
    framing, rest = {}, []
    for name in names:
        sel = fields == name
        t = windows["truth"][name]
        maj_px = np.asarray(t["maj_arcmin"], float) * 60.0 / float(t["pixel_arcsec"])
        f = framing_windows(
            windows["x0"][sel],
            windows["y0"][sel],
            windows["size"][sel],
            t["boxes"],
            maj_px,
            half_width_factor,
            box_scale,
            int(min(t["shape"])),
        )
        framing[name] = np.flatnonzero(f)
        rest += [(name, i) for i in np.flatnonzero(~f)]
    if int(n_background) >= len(rest):
        log.info("validation sample: every window (%d others <= %d)", len(rest), n_background)
        return None
    rng = np.random.default_rng([int(seed), VAL_STAGE])
    pick = rng.choice(len(rest), size=int(n_background), replace=False)
    background = {name: [] for name in names}
    for j in pick:
        background[rest[j][0]].append(rest[j][1])
    out = {
        name: np.unique(np.r_[framing[name], np.asarray(background[name], np.int64)]).astype(
            np.int64
        )
        for name in names
    }
    log.info(
        "validation sample: %d windows framing a bubble + %d of %d others",
        sum(len(v) for v in framing.values()),
        len(pick),
        len(rest),
    )
    return out


VALIDATION_CACHE_MB = 512  # preprocessed validation windows kept in memory up to this
# beyond that, preprocessed once into a temporary .npy file up to this (read in chunks at
# every validation; larger fields, e.g. 300 px windows of a 1.2" field, are re-preprocessed)
VALIDATION_DISK_CACHE_MB = 2048


def load_validation(
    windows_path: str | Path,
    field_files: dict,
    preprocess: dict,
    progress: bool = False,
    cache_dir=None,
    select: dict | None = None,
    win: dict | None = None,
    cache: bool = True,
) -> list[ValidationField]:
    """Preprocessed validation windows per field from ``windows/validation.h5`` and the
    aligned fields ``field_files`` (field -> path); ``cache_dir``: where the windows too large for
    memory are kept between passes (None: the system's temporary directory); ``select``:
    field -> indices of the windows kept (:func:`validation_sample`; None: every window);
    ``win``: the window file already read; ``cache`` false: the windows are preprocessed at
    every pass, never kept (for a single pass)."""
    win = read_windows(windows_path) if win is None else win
    fields = np.asarray(win["field"]).astype(str)
    out = []
    for name in sorted(set(fields)):
        if name not in field_files:
            raise ValueError(
                f"{windows_path}: windows of field {name} but no aligned field given "
                f"(have: {', '.join(sorted(field_files))})"
            )
        sel = fields == name
        x0, y0, sz = (np.asarray(win[k])[sel] for k in ("x0", "y0", "size"))
        if select is not None:
            x0, y0, sz = (a[select[name]] for a in (x0, y0, sz))
        # streamed: read and preprocessed chunk by chunk (one field at a time in memory),
        # kept after the first pass in memory when it fits VALIDATION_CACHE_MB, else in a
        # temporary file when it fits VALIDATION_DISK_CACHE_MB, else preprocessed every pass
        inputs = WindowStream(
            field_files[name],
            x0,
            y0,
            sz,
            cache_mb=VALIDATION_CACHE_MB if cache else 0.0,
            disk_cache_mb=VALIDATION_DISK_CACHE_MB if cache else 0.0,
            cache_dir=cache_dir,
            **preprocess,
        )
        truth = win["truth"][name]
        out.append(
            ValidationField(
                name,
                inputs,
                x0,
                y0,
                sz,
                np.asarray(truth["boxes"], np.float64).reshape(-1, 4),
                np.asarray(truth["clear"], bool),
                tuple(int(v) for v in truth["shape"]),
            )
        )
        log.info(
            "validation field %s: %d windows, %d catalogue bubbles (%d clear)",
            name,
            len(x0),
            len(out[-1].truth),
            out[-1].clear.sum(),
        )
    return out


def load_training_data(
    train_fields, catalog_path, negatives_paths, groups_path, preprocess, seed: int, **crop_kwargs
):
    """Bubble crop generator (data side's ``BubbleCrops``, given ``crop_kwargs`` such as
    ``half_width_factor`` and ``box_scale``) and the kept negative windows."""
    fields = [read_field(p) for p in train_fields]
    crops = BubbleCrops(fields, read_catalog(catalog_path), seed=seed, **crop_kwargs, **preprocess)
    neg = read_negatives(list(negatives_paths), groups_path) if negatives_paths else None
    if neg is not None:
        log.info("negatives: %d windows kept", len(neg["inputs"]))
    return crops, neg


def load_all_data(
    train_fields,
    catalog_path,
    negatives_paths,
    groups_path,
    windows_path,
    validation_fields,
    preprocess: dict,
    seed: int,
    validation_background: int | None = None,
    **crop_kwargs,
):
    """Everything ``train_ssd`` and ``tune_ssd`` read: the crop generator, the kept negatives,
    the preprocessed validation fields (named by the stem of each validation field file) and
    their sample of :func:`validation_sample` with ``validation_background`` other windows
    (None when that is None: every window is validated)."""
    crops, negatives = load_training_data(
        train_fields, catalog_path, negatives_paths, groups_path, preprocess, seed, **crop_kwargs
    )
    fields = {Path(f).stem: f for f in validation_fields}
    win = read_windows(windows_path)
    select = validation_sample(
        win,
        validation_background,
        seed,
        crop_kwargs.get("half_width_factor", HALF_WIDTH_FACTOR),
        crop_kwargs.get("box_scale", BOX_SCALE),
    )
    # with a sample, every window is validated once (the final threshold check): not cached
    full = load_validation(windows_path, fields, preprocess, win=win, cache=select is None)
    sample = None
    if select is not None:
        sample = load_validation(windows_path, fields, preprocess, select=select, win=win)
    return crops, negatives, full, sample
