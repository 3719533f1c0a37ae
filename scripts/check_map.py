"""Driver of rule check_map: read any PR3-like map, check it, write the RING float32 map + report."""

import json

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io import fits_maps  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402

band = snakemake.wildcards.band
m, report = fits_maps.read_and_check(
    snakemake.input.map,
    band,
    nside=snakemake.params.nside,
    max_bad_fraction=snakemake.params.max_bad_fraction,
)
for line in report["conversions"]:
    log.info("%s: %s", band, line)
fits_maps.write_checked_map(snakemake.output.map, m, report["unit"], {"BAND": band})
with atomic_path(snakemake.output.report) as tmp, open(tmp, "w") as fh:
    json.dump(report, fh, indent=2)
