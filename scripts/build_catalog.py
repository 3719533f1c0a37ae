"""Rule build_catalog: the named training catalogue of known clusters.

Stops here (before any patch job) when the catalogue is empty after its cuts or has no
cluster in the training tiles (every tile but clusters.tiles.validation and .test).
"""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters import catalogs  # noqa: E402

name = snakemake.wildcards.name
paths = {k: snakemake.input[k] for k in catalogs.needed_inputs(name)}
cat = catalogs.build_catalog(name, paths, snakemake.params.merge_radius_arcmin)
for origin in sorted(set(cat["ORIGIN"])):
    log.info("%s: %d entries from %s", name, int((cat["ORIGIN"] == origin).sum()), origin)
counts = catalogs.check_training_coverage(cat, snakemake.params.training_tiles, name)
log.info("%s: %d clusters in %d training tiles", name, sum(counts.values()), len(counts))
catalogs.write_catalog(cat, snakemake.output[0])
log.info("%s: %d clusters -> %s", name, len(cat), snakemake.output[0])
