"""What the bubble SSD trains and validates on: the crop generator, the kept negatives and the
preprocessed validation windows of each validation field (read by ``train_ssd`` and
``tune_ssd`` through :func:`load_all_data`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class ValidationField:
    """Preprocessed sliding windows of one validation tile and its catalogue boxes."""

    name: str
    inputs: np.ndarray  # (N, S, S, C)
    x0: np.ndarray
    y0: np.ndarray
    size: np.ndarray
    truth: np.ndarray  # (K, 4) tile pixel boxes
    clear: np.ndarray  # (K,) bool
    shape: tuple[int, int] | None = None  # (H, W): detections centred outside are dropped


def files_key(paths) -> list:
    """Name, size and modification time of input files: changes when an input is rewritten."""
    out = []
    for p in sorted(str(p) for p in paths):
        st = os.stat(p)
        out.append([p, st.st_size, st.st_mtime_ns])
    return out


VALIDATION_CACHE_MB = 512  # preprocessed validation windows kept in memory up to this
# beyond that, preprocessed once into a temporary .npy file up to this (read in chunks at
# every validation; larger fields, e.g. 300 px windows of a 1.2" tile, are re-preprocessed)
VALIDATION_DISK_CACHE_MB = 2048


def load_validation(
    windows_path: str | Path,
    tiles: dict,
    preprocess: dict,
    progress: bool = False,
    cache_dir=None,
) -> list[ValidationField]:
    """Preprocessed validation windows per field from ``windows/validation.h5`` and the
    aligned tiles ``tiles`` (field -> path); ``cache_dir``: where the windows too large for
    memory are kept between passes (None: the system's temporary directory)."""
    from .preprocess import WindowStream
    from .windows import read_windows

    win = read_windows(windows_path)
    fields = np.asarray(win["field"]).astype(str)
    out = []
    for name in sorted(set(fields)):
        if name not in tiles:
            raise ValueError(
                f"{windows_path}: windows of field {name} but no aligned tile given "
                f"(have: {', '.join(sorted(tiles))})"
            )
        sel = fields == name
        x0, y0, sz = (np.asarray(win[k])[sel] for k in ("x0", "y0", "size"))
        # streamed: read and preprocessed chunk by chunk (one field at a time in memory),
        # kept after the first pass in memory when it fits VALIDATION_CACHE_MB, else in a
        # temporary file when it fits VALIDATION_DISK_CACHE_MB, else preprocessed every pass
        inputs = WindowStream(
            tiles[name],
            x0,
            y0,
            sz,
            cache_mb=VALIDATION_CACHE_MB,
            disk_cache_mb=VALIDATION_DISK_CACHE_MB,
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
    ``k_range`` and ``box_scale``) and the kept negative windows."""
    from ..io.spitzer import read_field
    from .catalog import read_catalog
    from .crops import BubbleCrops
    from .negatives import read_negatives

    tiles = [read_field(p) for p in train_fields]
    crops = BubbleCrops(tiles, read_catalog(catalog_path), seed=seed, **crop_kwargs, **preprocess)
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
    **crop_kwargs,
):
    """Everything ``train_ssd`` and ``tune_ssd`` read: the crop generator, the kept negatives
    and the preprocessed validation fields (named by the stem of each validation tile file)."""
    crops, negatives = load_training_data(
        train_fields, catalog_path, negatives_paths, groups_path, preprocess, seed, **crop_kwargs
    )
    fields = {Path(f).stem: f for f in validation_fields}
    return crops, negatives, load_validation(windows_path, fields, preprocess)
