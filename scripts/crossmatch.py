"""Rule crossmatch: the candidate catalogue of a run (known clusters, IR/radio sources)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from astropy.coordinates import SkyCoord  # noqa: E402

from skydetect.clusters.crossmatch import (  # noqa: E402
    class_counts,
    concat_detections,
    crossmatch,
    known_catalog,
)
from skydetect.clusters.detect import read_detections, write_table_atomic  # noqa: E402
from skydetect.io.catalogs import read_catalog, read_source_catalogs  # noqa: E402

NAME_COLUMN = {"psz2": "NAME", "mcxc": "MCXC", "redmapper": "NAME"}

cfg = snakemake.params.crossmatch
detections = concat_detections([read_detections(p) for p in snakemake.input.detections])
known, warnings = {}, []
for name in snakemake.params.catalogs:
    table = read_catalog(name, snakemake.input[name])
    warnings += table.meta.get("warnings", [])
    if "GLON" not in table.colnames:  # redMaPPer has RA/DEC only
        g = SkyCoord(table["RA"], table["DEC"], unit="deg", frame="icrs").galactic
        table["GLON"], table["GLAT"] = g.l.deg, g.b.deg
    known[name.upper()] = known_catalog(table, NAME_COLUMN[name], snakemake.input[name])
sources = read_source_catalogs(snakemake.input.sources, snakemake.params.sources_format)
warnings += [w for t in sources.values() for w in t.meta.get("warnings", [])]
log.info(
    "IR/radio sources: %s", ", ".join(f"{label} ({len(t)})" for label, t in sources.items())
)
cand = crossmatch(
    detections, known, sources, cfg["cluster_radius_arcmin"], cfg["source_radius_arcmin"]
)
cand.meta["RUN"] = snakemake.wildcards.run
# the input catalogues' warnings travel with the result (FITS COMMENT cards, ECSV header)
if warnings:
    cand.meta["comments"] = [f"WARNING: {w}" for w in warnings]
log.info("run %s: %d candidates: %s", snakemake.wildcards.run, len(cand), class_counts(cand))
write_table_atomic(cand, snakemake.output.fits)
write_table_atomic(cand, snakemake.output.csv)
