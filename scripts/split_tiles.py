"""Rule split_tiles: cut every full-sky checked map (read once) into the 48 nside-2 tiles."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.geometry import tiles  # noqa: E402

bands = [str(b) for b in snakemake.params.bands]
maps = dict(zip(bands, snakemake.input.maps, strict=True))
out = {int(t): path for t, path in zip(snakemake.params.tiles, snakemake.output.tiles, strict=True)}
log.info(
    "splitting %d band(s) into %d tiles, margin %.3f deg",
    len(maps),
    len(out),
    snakemake.params.margin_deg,
)
tiles.split_maps(maps, out, snakemake.params.margin_deg, progress=True)
log.info("done")
