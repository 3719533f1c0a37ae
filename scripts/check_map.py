"""Driver of rule check_map: read any PR3-like map, check it, write the RING float32 map + report.

The map's NSIDE is compared with config key planck.nside whatever the source (the tiling and
the patches assume it); a downloaded map is verified against the SHA-256 its first download
recorded in the lock file (config key download_lock): a different digest stops the job, a
map without an entry is reported as unverified.
"""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

import json

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io import fits_maps  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.io.lockfile import DownloadLock, verify_against_lock  # noqa: E402

band = snakemake.wildcards.band
params = snakemake.params
# a download first: its digest against the lock file (a changed file stops here)
check = (
    verify_against_lock(snakemake.input.map, DownloadLock(params.lock))
    if params.source == "download"
    else None
)
m, report = fits_maps.read_and_check(
    snakemake.input.map,
    band,
    nside=int(params.nside),
    max_bad_fraction=snakemake.params.max_bad_fraction,
)
for line in report["conversions"]:
    log.info("%s: %s", band, line)
report["warnings"] = []
if check is not None:
    report["verified"], report["sha256"] = check["verified"], check["sha256"]
    if check["verified"]:
        log.info("%s", check["note"])
    else:
        report["warnings"].append(check["note"])
        log.warning("%s", check["note"])
fits_maps.write_checked_map(snakemake.output.map, m, report["unit"], {"BAND": band})
with atomic_path(snakemake.output.report) as tmp, open(tmp, "w") as fh:
    json.dump(report, fh, indent=2)
