"""Both bands of a field on the 8 µm grid (24 µm reprojected)."""

import numpy as np

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.sky.spitzer import align_tile, write_tile  # noqa: E402

tile = align_tile(snakemake.input.i4, snakemake.input.m1, snakemake.wildcards.field)
log.info(
    "field %s: %s px at %.3f arcsec, NaN fraction 24 µm %.4f, 8 µm %.4f",
    tile.field,
    tile.shape,
    tile.pixel_arcsec,
    *np.isnan(tile.data).mean(axis=(1, 2)),
)
write_tile(snakemake.output[0], tile)
