"""A copy of a field with NaN discs (and a mask) over the catalogued bubbles."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import read_catalog  # noqa: E402
from skydetect.bubbles.masks import mask_field  # noqa: E402
from skydetect.io.spitzer import read_field, write_field  # noqa: E402

cfg = snakemake.params.mask
field = read_field(snakemake.input.field)
masked, mask = mask_field(
    field, read_catalog(snakemake.input.catalog), cfg["radius_reff"], cfg["clear_only"]
)
log.info("field %s: %d pixels masked", field.field, int(mask.sum()))
write_field(snakemake.output[0], masked)
