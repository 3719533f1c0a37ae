"""Driver of rule download_file: a verified, resumable download (skydetect.io.lockfile)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io.lockfile import DownloadLock, fetch_recorded  # noqa: E402

p = snakemake.params
log.info("downloading %s -> %s (size %s, sha256 %s)", p.url, snakemake.output[0], p.size, p.sha256)
fetch_recorded(
    p.url,
    snakemake.output[0],
    DownloadLock(p.lock),
    size=p.size,
    sha256=p.sha256,
    unpack=p.unpack["unpack"],
    member=p.unpack["member"],
    retries=p.retries,
    timeout=p.timeout,
)
