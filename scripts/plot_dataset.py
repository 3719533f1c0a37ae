"""Rule plot_dataset: example patches of one split, every band beside its mask."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.plots.dataset import plot_examples  # noqa: E402

rows = plot_examples(
    snakemake.input[0], snakemake.output[0], snakemake.params.n_examples, snakemake.params.seed
)
log.info("%d example patches -> %s", rows, snakemake.output[0])
