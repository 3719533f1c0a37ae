"""Sliding windows over the validation / test fields with the boxes of the bubbles they hold."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import read_catalog  # noqa: E402
from skydetect.bubbles.windows import field_truth, make_windows, write_windows  # noqa: E402
from skydetect.io.spitzer import read_field  # noqa: E402

cfg = snakemake.params.windows
catalog = read_catalog(snakemake.input.catalog)
fields = {}
for path in snakemake.input.fields:
    field = read_field(path)
    fields[field.field] = field_truth(field, catalog, cfg["box_scale"])
arrays = make_windows(fields, cfg["sizes_arcmin"], cfg["stride_fraction"], cfg["edge_pad"])
log.info("%d windows, %d boxes over %s", len(arrays["x0"]), len(arrays["boxes"]), list(fields))
write_windows(
    snakemake.output[0],
    arrays,
    {
        "split": snakemake.wildcards.bubble_split,
        "fields": list(fields),
        "sizes_arcmin": list(cfg["sizes_arcmin"]),
        "stride_fraction": cfg["stride_fraction"],
        "edge_pad": cfg["edge_pad"],
        "box_scale": cfg["box_scale"],
    },
)
