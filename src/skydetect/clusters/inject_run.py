"""One tile's injection run: draw the injections, add them to the tile's maps and cover
patches, run every U-Net run and the MMF again, and match their detections to the injections.

The U-Net sees the tile's cover patches plus the injected signal sampled through the same
patches (:func:`skydetect.clusters.inject.signal_patches`, identical to cutting the cover of
the injected tile), predicted and combined as rule ``predict_tile`` does and extracted as
``extract_detections`` does; the MMF runs on the injected tile as rule ``mmf_tile`` does.
Each detector's detection criteria are those of the configuration; the thresholds that
decide what counts as found are applied afterwards (:mod:`skydetect.clusters.selfunc`), so the
table records each injection's best matched score, ``SCORE_<detector>``, and the separation
of that detection, ``SEP_<detector>`` (arcmin; NaN: nothing within the match radius).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from skydetect.clusters import inject, mmf
from skydetect.clusters.detect import DetectParams, find_detections
from skydetect.clusters.predict import predict_tile, read_cover
from skydetect.schema import schema_defaults

log = logging.getLogger(__name__)

INJECT_STAGE = 7  # the injections' random stream: default_rng([seed, INJECT_STAGE, tile])
_EVALUATE = schema_defaults("clusters.evaluate")  # the match radius


@dataclass
class UNetRun:
    """A U-Net run ready to predict: its network, input bands and detection criteria."""

    model: object
    bands: list
    detect: DetectParams
    predict: dict = field(default_factory=dict)  # batch_size, nside, precision, streams


@dataclass(frozen=True)
class MatchRadius:
    """The evaluation's match radius: clip(scale x THETA500, min, max) arcmin."""

    scale: float = _EVALUATE["theta500_scale"]
    min_arcmin: float = _EVALUATE["min_radius_arcmin"]
    max_arcmin: float = _EVALUATE["max_radius_arcmin"]


def avoid_positions(tables) -> tuple[np.ndarray, np.ndarray]:
    """(glon, glat) of every detection of the given tables (the existing candidates)."""
    glon = [np.asarray(t["GLON"], float) for t in tables if len(t)]
    glat = [np.asarray(t["GLAT"], float) for t in tables if len(t)]
    if not glon:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(glon), np.concatenate(glat)


def _record(table: Table, name: str, score: str, dets: Table, radius: MatchRadius) -> None:
    best, sep = inject.match_injections(
        table, dets, score, radius.scale, radius.min_arcmin, radius.max_arcmin
    )
    table[f"SCORE_{name}"] = best
    table[f"SEP_{name}"] = sep
    table[f"SEP_{name}"].unit = "arcmin"
    table.meta[f"SCORE_{name}"] = score


def run_injections(
    tile,
    cover_path,
    cfg: inject.InjectConfig,
    seed: int,
    unet_runs: dict,
    stats: dict,
    mmf_cfg=None,
    avoid=None,
    mask=None,
    radius: MatchRadius = MatchRadius(),
    fwhm_overrides: dict | None = None,
    profiles=None,
    workers: int = 1,
) -> Table:
    """The injection table of ``tile`` (a :class:`~skydetect.geometry.tiles.Tile` with every
    band the detectors read) with each detector's matched scores: ``unet_runs`` maps run
    names to :class:`UNetRun`, ``stats`` is the normalisation, ``mmf_cfg`` an
    :class:`~skydetect.clusters.mmf.MMFConfig` (None: no MMF). ``profiles``: one GNFW per
    injection, or a callable (injection table, rng) -> such a list (None: Arnaud et al.
    2010); see :func:`skydetect.clusters.inject.signal_maps`."""
    rng = np.random.default_rng([int(seed), INJECT_STAGE, int(tile.tile)])
    t0 = time.perf_counter()
    table = inject.draw_injections(tile, cfg, rng, avoid=avoid, mask=mask)
    if callable(profiles):
        profiles = profiles(table, rng)
    signal = inject.signal_maps(tile, table, tile.bands, fwhm_overrides, profiles)
    t1 = time.perf_counter()
    log.info("tile %d: %d injections drawn and painted in %.1f s", tile.tile, len(table), t1 - t0)
    if unet_runs:
        geometry, attrs = read_cover(cover_path, [])
        cover_bands = [str(b) for b in attrs["bands"]]
        patches = inject.signal_patches(
            tile, signal, geometry, cover_bands, int(attrs["size"]),
            float(attrs["pixel_arcmin"]), str(attrs.get("sampling", "nearest")),
        )  # fmt: skip
        for name, run in unet_runs.items():
            idx = [cover_bands.index(str(b)) for b in run.bands]
            pmap = predict_tile(cover_path, run.model, run.bands, stats, tile.tile,
                                signal=patches[..., idx], **run.predict)  # fmt: skip
            dets = find_detections(pmap.pixels, pmap.prob, pmap.nside, run.detect, tile=tile.tile)
            _record(table, name, "PEAK_PROB", dets, radius)
            log.info("run %s: %d detections, %d injections matched", name, len(dets),
                     int(np.isfinite(table[f"SCORE_{name}"]).sum()))  # fmt: skip
    if mmf_cfg is not None:
        res = mmf.run_tile(inject.add_signal(tile, signal), mmf_cfg, workers=workers)
        dets = mmf.detections_table(res.detections)
        _record(table, "mmf", "SNR", dets, radius)
        log.info("mmf: %d detections, %d injections matched", len(dets),
                 int(np.isfinite(table["SCORE_mmf"]).sum()))  # fmt: skip
    table.meta.update(tile=int(tile.tile), seed=int(seed), n_per_tile=cfg.n_per_tile,
                      y5r500_edges=list(cfg.y5r500_edges),
                      theta500_edges=list(cfg.theta500_edges),
                      min_separation_arcmin=cfg.min_separation_arcmin)  # fmt: skip
    log.info("tile %d: injections run in %.1f s", tile.tile, time.perf_counter() - t0)
    return table
