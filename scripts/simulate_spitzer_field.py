"""Mock GLIMPSE 8 µm / MIPSGAL 24 µm mosaics of one field and their truth catalogue."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import read_mwp, write_catalog  # noqa: E402
from skydetect.io.spitzer import write_mosaic  # noqa: E402
from skydetect.sky.spitzer import simulate_field  # noqa: E402

field = snakemake.wildcards.field
cfg = snakemake.params.simulate
real = None
if "positions_from" in snakemake.input.keys():
    clear = snakemake.input.get("clear_names_from", None)
    real = read_mwp(snakemake.input.positions_from, clear)
    log.info("bubbles at the positions of %s (%d rows)", snakemake.input.positions_from, len(real))
i4, m1, truth = simulate_field(field, cfg, snakemake.params.seed, real)
log.info(
    "field %s: 8 µm %s, 24 µm %s, %d bubbles (%d clear)",
    field,
    i4.data.shape,
    m1.data.shape,
    len(truth),
    int(truth["CLEAR"].sum()),
)
write_mosaic(snakemake.output.i4, i4)
write_mosaic(snakemake.output.m1, m1)
write_catalog(snakemake.output.truth, truth)
