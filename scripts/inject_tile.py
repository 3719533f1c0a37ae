"""Rule inject_tile: clusters injected into one tile's maps, every detector run again on them."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from skydetect.clusters import inference, inject, inject_run, mmf, normalise  # noqa: E402
from skydetect.clusters.detect import DetectParams, read_detections, write_table_atomic  # noqa: E402
from skydetect.geometry.tiles import read_tile  # noqa: E402

p = snakemake.params
tile = read_tile(snakemake.input.tile)
if tile.tile != int(snakemake.wildcards.tile):
    raise ValueError(f"{snakemake.input.tile} holds tile {tile.tile}, not {snakemake.wildcards.tile}")
cfg = inject.InjectConfig.from_config(p.inject)
streams = inference.resolve_streams(p.detect["streams"], snakemake.threads)
inference.configure_threads(snakemake.threads, streams)
precision = inference.resolve_precision(p.detect["precision"])
detect = DetectParams(**{k: p.detect[k] for k in ("threshold", "min_pixels", "max_radius_arcmin",
                                                   "centre", "oversize", "max_split_depth")})  # fmt: skip
predict = {"batch_size": p.detect["batch_size"], "nside": p.detect["nside"],
           "precision": precision, "streams": streams}  # fmt: skip
runs = {
    run: inject_run.UNetRun(
        inference.load_for_inference(Path(model).parent, precision), p.run_bands[run], detect,
        predict,
    )
    for run, model in zip(p.unet_runs, snakemake.input.models, strict=True)
}
mmf_cfg = mmf.MMFConfig.from_config(dict(p.mmf), p.bands) if p.mmf["enabled"] else None
avoid = inject_run.avoid_positions([read_detections(f) for f in snakemake.input.detections])
masks = [inject.read_mask(path) for path in snakemake.input.get("mask", [])]


def mask(glon, glat):
    """True where every mask is valid."""
    return np.all([valid(glon, glat) for valid in masks], axis=0)


table = inject_run.run_injections(
    tile, snakemake.input.cover, cfg, p.seed, runs, normalise.load(snakemake.input.normalisation),
    mmf_cfg=mmf_cfg, avoid=avoid, mask=mask, radius=inject_run.MatchRadius(*p.match_radius),
    workers=snakemake.threads,
    profiles=inject.scattered_profiles(p.simulate),  # the mock's profile scatter
)  # fmt: skip
write_table_atomic(table, snakemake.output.injections)
