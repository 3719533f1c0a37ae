"""Rule compare_detectors: U-Net vs MMF completeness and purity in one table and figure."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

import json  # noqa: E402

from astropy.table import Table  # noqa: E402

from skydetect.clusters.detect import write_table_atomic  # noqa: E402
from skydetect.clusters.evaluate import comparison_table  # noqa: E402
from skydetect.plots.detections import plot_comparison  # noqa: E402

runs = snakemake.params.runs
summaries = {}
curves = {}
for run, s_path, c_path in zip(
    runs, snakemake.input.summaries, snakemake.input.curves, strict=True
):
    with open(s_path) as fh:
        summaries[run] = json.load(fh)
    curves[run] = Table.read(c_path, format="ascii.ecsv")
table = comparison_table(summaries, curves)
for row in table[table["QUANTITY"] != "completeness_snr"]:
    log.info("%-10s %-24s %s", row["RUN"], row["QUANTITY"], f"{row['VALUE']:.4g}")
write_table_atomic(table, snakemake.output.table)
plot_comparison(table, snakemake.output.figure)
