"""A copy of a tile with NaN discs over the catalogued (clear) bubbles."""

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import read_catalog  # noqa: E402
from skydetect.bubbles.masks import mask_tile  # noqa: E402
from skydetect.sky.spitzer import read_tile, write_tile  # noqa: E402

cfg = snakemake.params.mask
tile = read_tile(snakemake.input.tile)
masked, mask = mask_tile(
    tile, read_catalog(snakemake.input.catalog), cfg["radius_reff"], cfg["clear_only"]
)
log.info("field %s: %d pixels masked", tile.field, int(mask.sum()))
write_tile(snakemake.output[0], masked)
