"""Rule build_catalog: the named training catalogue of known clusters."""

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters import catalogs  # noqa: E402

name = snakemake.wildcards.name
paths = {k: snakemake.input[k] for k in catalogs.needed_inputs(name)}
cat = catalogs.build_catalog(name, paths, snakemake.params.merge_radius_arcmin)
for origin in sorted(set(cat["ORIGIN"])):
    log.info("%s: %d entries from %s", name, int((cat["ORIGIN"] == origin).sum()), origin)
catalogs.write_catalog(cat, snakemake.output[0])
log.info("%s: %d clusters -> %s", name, len(cat), snakemake.output[0])
