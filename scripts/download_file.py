"""Driver of rule download_file: a verified, resumable download (skydetect.io.download)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io.download import fetch  # noqa: E402

p = snakemake.params
log.info("downloading %s -> %s (size %s, sha256 %s)", p.url, snakemake.output[0], p.size, p.sha256)
fetch(
    p.url,
    snakemake.output[0],
    size=p.size,
    sha256=p.sha256,
    retries=p.retries,
    timeout=p.timeout,
)
