"""Rule normalise: per-band statistics from the training split only."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters import datasets, normalise  # noqa: E402

stats = datasets.fit_normalisation(
    list(snakemake.input.patches),
    snakemake.params.bands,
    snakemake.params.method,
    snakemake.params.max_patches,
    snakemake.params.seed,
)
for band, s in stats["bands"].items():
    log.info("band %s: sigma %.4g (median %.4g)", band, s["sigma"], s["median"])
normalise.save(stats, snakemake.output[0])
