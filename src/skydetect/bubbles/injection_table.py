"""Recall per MajAxis x contrast cell from injections (:mod:`skydetect.bubbles.inject`), with
Clopper-Pearson intervals, beside the recall of the catalogue's (mock truth's) clear bubbles in
the same cells where the catalogue gives each bubble's contrast; the ECSV file.

A cell is one grid point of ``bubbles.inject.majaxis_arcmin`` x ``contrast``; for catalogue
bubbles, whose sizes and contrasts are continuous, it spans from the geometric midpoint to
the previous grid point up to the one to the next (the outer cells as wide on their outer
side). Columns: ``MAJAXIS_ARCMIN CONTRAST`` (the cell), ``MAJAXIS_LO MAJAXIS_HI CONTRAST_LO
CONTRAST_HI`` (its bin), ``K N RECALL RECALL_LO RECALL_HI`` (injections recovered of
injected), and with a catalogue contrast ``K_TRUTH N_TRUTH RECALL_TRUTH RECALL_TRUTH_LO
RECALL_TRUTH_HI``.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from skydetect.io.atomic import atomic_path

from .evaluate import match_flags
from .inject import CONTRAST_DEFINITION, grid_cells
from .summary import clopper_pearson

CONTRAST_COLUMN = "CONTRAST"  # a catalogue's (the mock truth's) per-bubble contrast
COLUMNS = ["MAJAXIS_ARCMIN", "CONTRAST", "MAJAXIS_LO", "MAJAXIS_HI", "CONTRAST_LO",
           "CONTRAST_HI", "K", "N", "RECALL", "RECALL_LO", "RECALL_HI"]  # fmt: skip
TRUTH_COLUMNS = ["K_TRUTH", "N_TRUTH", "RECALL_TRUTH", "RECALL_TRUTH_LO", "RECALL_TRUTH_HI"]


def cell_edges(grid) -> np.ndarray:
    """Bin edges (n + 1) around ascending positive grid points: geometric midpoints."""
    g = np.asarray(grid, float)
    if g.ndim != 1 or len(g) == 0 or (g <= 0).any() or (np.diff(g) <= 0).any():
        raise ValueError(f"grid must be positive and strictly ascending, got {list(g)}")
    ratio = np.sqrt(g[1:] / g[:-1]) if len(g) > 1 else np.array([np.sqrt(2.0)])
    mids = g[:-1] * ratio[: len(g) - 1]
    return np.concatenate([[g[0] / ratio[0]], mids, [g[-1] * ratio[-1]]])


def _counts_in_cells(found, maj, con, majaxis_grid, contrast_grid):
    """k, n (cells,) of flags ``found`` binned by ``maj`` x ``con`` (out of the grid: none)."""
    me, ce = cell_edges(majaxis_grid), cell_edges(contrast_grid)
    i = np.searchsorted(me, np.asarray(maj, float), side="right") - 1
    j = np.searchsorted(ce, np.asarray(con, float), side="right") - 1
    ok = (i >= 0) & (i < len(me) - 1) & (j >= 0) & (j < len(ce) - 1)
    cell = i[ok] * (len(ce) - 1) + j[ok]
    n_cells = (len(me) - 1) * (len(ce) - 1)
    n = np.bincount(cell, minlength=n_cells)
    k = np.bincount(cell, weights=np.asarray(found, float)[ok], minlength=n_cells)
    return k.astype(int), n


def _with_interval(t: Table, k, n, prefix: str, level: float) -> None:
    ci = np.array([clopper_pearson(int(a), int(b), level) for a, b in zip(k, n, strict=True)])
    t[f"K{prefix}"], t[f"N{prefix}"] = np.asarray(k, int), np.asarray(n, int)
    with np.errstate(invalid="ignore", divide="ignore"):
        t[f"RECALL{prefix}"] = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    t[f"RECALL{prefix}_LO"], t[f"RECALL{prefix}_HI"] = ci[:, 0], ci[:, 1]


def recall_cells(injections: Table, majaxis_grid, contrast_grid, level: float = 0.95) -> Table:
    """Recall of the injections (columns ``MajAxis``, ``CONTRAST``, ``FOUND``) per cell."""
    cells = grid_cells(majaxis_grid, contrast_grid)
    me, ce = cell_edges(majaxis_grid), cell_edges(contrast_grid)
    t = Table()
    t["MAJAXIS_ARCMIN"], t["CONTRAST"] = cells[:, 0], cells[:, 1]
    i = np.repeat(np.arange(len(majaxis_grid)), len(contrast_grid))
    j = np.tile(np.arange(len(contrast_grid)), len(majaxis_grid))
    t["MAJAXIS_LO"], t["MAJAXIS_HI"] = me[i], me[i + 1]
    t["CONTRAST_LO"], t["CONTRAST_HI"] = ce[j], ce[j + 1]
    k, n = _counts_in_cells(
        injections["FOUND"],
        injections["MajAxis"],
        injections["CONTRAST"],
        majaxis_grid,
        contrast_grid,
    )
    _with_interval(t, k, n, "", level)
    t["MAJAXIS_ARCMIN"].unit = t["MAJAXIS_LO"].unit = t["MAJAXIS_HI"].unit = "arcmin"
    t.meta.update({"level": level, "contrast": CONTRAST_DEFINITION})
    return t


def truth_found(truth: dict, contrast, pred, scores, iou_threshold: float = 0.5) -> Table:
    """The clear catalogue bubbles of one field (``truth``: a
    :func:`skydetect.bubbles.windows.field_truth` entry; ``contrast`` per bubble) with
    ``FOUND`` by the evaluation's one-to-one IoU rule against detections ``pred``/``scores``."""
    clear = np.asarray(truth["clear"], bool)
    found, *_ = match_flags(
        pred, scores, truth["boxes"], clear, rule="iou", iou_threshold=iou_threshold
    )
    t = Table()
    t["MajAxis"] = np.asarray(truth["maj_arcmin"], float)[clear]
    t["CONTRAST"] = np.asarray(contrast, float)[clear]
    t["FOUND"] = found[clear]
    return t


def add_truth(cells: Table, truth: Table, majaxis_grid, contrast_grid, level=0.95) -> None:
    """Add the catalogue's clear-bubble recall in the same cells (``TRUTH_COLUMNS``)."""
    k, n = _counts_in_cells(
        truth["FOUND"], truth["MajAxis"], truth["CONTRAST"], majaxis_grid, contrast_grid
    )
    _with_interval(cells, k, n, "_TRUTH", level)


def write_injection_table(path, table: Table) -> None:
    missing = [c for c in COLUMNS if c not in table.colnames]
    if missing:
        raise ValueError(f"injection table for {path} lacks column(s) {', '.join(missing)}")
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)


def read_injection_table(path) -> Table:
    t = Table.read(path, format="ascii.ecsv")
    missing = [c for c in COLUMNS if c not in t.colnames]
    if missing:
        raise ValueError(f"{path}: injection table lacks column(s) {', '.join(missing)}")
    return t
