"""A bubble catalogue of the run: the union of the mock fields' catalogues (the volunteers'
catalogues, or the truths), or MWP DR2 + clear names."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import (  # noqa: E402
    assign_fields,
    combine,
    read_catalog,
    read_mwp,
    write_catalog,
)

if "fields" in snakemake.input.keys():
    table = combine([read_catalog(p) for p in snakemake.input.fields])
else:
    table = read_mwp(snakemake.input.catalog, snakemake.input.clear_names)
table = assign_fields(table, snakemake.params.centres, snakemake.params.half_width)
log.info(
    "%d bubbles (%d clear), %d in the configured fields",
    len(table),
    int(table["CLEAR"].sum()),
    int((table["FIELD"] != "").sum()),
)
write_catalog(snakemake.output[0], table)
