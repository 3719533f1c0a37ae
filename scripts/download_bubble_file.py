"""Download one GLIMPSE / MIPSGAL mosaic, verified (config size / sha256, FITS checksums, and
the lock file download_lock, where its first download records its SHA-256)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io.lockfile import DownloadLock, fetch_recorded  # noqa: E402

src = snakemake.params.source
lock = DownloadLock(snakemake.params.lock)
fetch_recorded(
    src["url"], snakemake.output[0], lock, size=src["size"], sha256=src["sha256"], progress=False
)
