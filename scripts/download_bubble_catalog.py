"""Download the MWP DR2 catalogue (CSV) and the clear-bubble name list (.npy), verified
(config size / sha256 and the lock file download_lock)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io.lockfile import DownloadLock, fetch_recorded  # noqa: E402

lock = DownloadLock(snakemake.params.lock)
for key in ("catalog", "clear_names"):
    src = snakemake.params[key]
    if not src["url"]:
        raise ValueError(
            f"config key 'bubbles.download.{key}.url' is missing: bubbles.source is 'download'"
        )
    fetch_recorded(
        src["url"],
        snakemake.output[key],
        lock,
        size=src["size"],
        sha256=src["sha256"],
        progress=False,
    )
