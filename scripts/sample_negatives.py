"""Random non-bubble windows of a masked field, preprocessed, into HDF5 (streamed)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import read_catalog  # noqa: E402
from skydetect.bubbles.negatives import negatives_for_field, write_negatives  # noqa: E402
from skydetect.io.spitzer import read_field  # noqa: E402

field = read_field(snakemake.input.field)
# the window-size fit uses the training fields' bubbles only (never validation or test)
neg = negatives_for_field(
    field,
    read_catalog(snakemake.input.catalog),
    train_fields=snakemake.params.train_fields,
    seed=snakemake.params.seed,
    neg=snakemake.params.negatives,
    preprocess=snakemake.params.preprocess,
)
log.info("field %s: %d negative windows (%d training bubbles in the size fit)",
         field.field, len(neg["x0"]), neg["attrs"]["size_fit_bubbles"])
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
