"""Rule assemble: one normalised, chunked HDF5 dataset per split."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters import datasets, normalise  # noqa: E402

stats = normalise.load(snakemake.input.normalisation)
n = datasets.assemble(
    list(snakemake.input.patches),
    snakemake.output[0],
    stats,
    snakemake.params.bands,
    snakemake.wildcards.split,
)
log.info(
    "%s: %d patches from %d tile files", snakemake.wildcards.split, n, len(snakemake.input.patches)
)
