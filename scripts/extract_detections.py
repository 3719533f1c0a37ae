"""Rule extract_detections: clusters in a tile's probability map (reference criteria)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters.detect import (  # noqa: E402
    DetectParams,
    find_detections,
    write_table_atomic,
)
from skydetect.clusters.predict import read_prediction  # noqa: E402

cfg = snakemake.params.detect
params = DetectParams(
    threshold=cfg["threshold"],
    min_pixels=cfg["min_pixels"],
    max_radius_arcmin=cfg["max_radius_arcmin"],
    centre=cfg["centre"],
    oversize=cfg["oversize"],
    max_split_depth=cfg["max_split_depth"],
)
pmap = read_prediction(snakemake.input.prediction)
tile = int(snakemake.wildcards.tile)
if pmap.tile != tile:
    raise ValueError(f"{snakemake.input.prediction}: holds tile {pmap.tile}, not {tile}")
det = find_detections(pmap.pixels, pmap.prob, pmap.nside, params, tile=tile)
det.meta["run"] = snakemake.wildcards.run
log.info("tile %d: %d detections (%d pixels above %.2f)", tile, len(det),
         int((pmap.prob > params.threshold).sum()), params.threshold)  # fmt: skip
write_table_atomic(det, snakemake.output.detections)
