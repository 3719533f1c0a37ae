"""Rule select_run_bands: a dataset restricted to one U-Net run's input bands."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters.datasets import select_bands  # noqa: E402

n = select_bands(snakemake.input[0], snakemake.output[0], snakemake.params.bands)
log.info("run %s, %s: %d patches, bands %s", snakemake.wildcards.run,
         snakemake.wildcards.split, n, ",".join(snakemake.params.bands))  # fmt: skip
