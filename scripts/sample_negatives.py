"""Random non-bubble windows of a masked tile, preprocessed, into HDF5."""

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import read_catalog  # noqa: E402
from skydetect.bubbles.negatives import negatives_for_tile, write_negatives  # noqa: E402
from skydetect.sky.spitzer import read_tile  # noqa: E402

tile = read_tile(snakemake.input.tile)
neg = negatives_for_tile(
    tile,
    read_catalog(snakemake.input.catalog),
    seed=snakemake.params.seed,
    neg=snakemake.params.negatives,
    preprocess=snakemake.params.preprocess,
)
log.info("field %s: %d negative windows", tile.field, len(neg["x0"]))
write_negatives(
    snakemake.output[0],
    neg["inputs"],
    neg["x0"],
    neg["y0"],
    neg["size"],
    neg["glon"],
    neg["glat"],
    neg["attrs"],
)
