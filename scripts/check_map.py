"""Driver of rule check_map: read any PR3-like map, check it, write the RING float32 map + report.

The map's NSIDE is compared with config key planck.nside whatever the source (the tiling and
the patches assume it); a map downloaded without a SHA-256 is reported as unverified.
"""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

import json

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io import fits_maps  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.io.download import unverified_reason  # noqa: E402

band = snakemake.wildcards.band
params = snakemake.params
m, report = fits_maps.read_and_check(
    snakemake.input.map,
    band,
    nside=int(params.nside),
    max_bad_fraction=snakemake.params.max_bad_fraction,
)
for line in report["conversions"]:
    log.info("%s: %s", band, line)
report["warnings"] = []
if params.source == "download":
    entry = params.download
    reason = unverified_reason(entry.get("size"), entry.get("sha256"))
    report["verified"] = reason is None
    if reason:
        note = f"{snakemake.input.map}: UNVERIFIED download ({reason}; planck.download.{band})"
        report["warnings"].append(note)
        log.warning("%s", note)
fits_maps.write_checked_map(snakemake.output.map, m, report["unit"], {"BAND": band})
with atomic_path(snakemake.output.report) as tmp, open(tmp, "w") as fh:
    json.dump(report, fh, indent=2)
