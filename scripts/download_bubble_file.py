"""Download one GLIMPSE / MIPSGAL mosaic, verified against the size and SHA-256 in the config."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io.download import fetch  # noqa: E402

src = snakemake.params.source
if src["sha256"] is None:
    log.warning("no sha256 configured for %s (bubbles.download.files): not verified", src["url"])
fetch(src["url"], snakemake.output[0], size=src["size"], sha256=src["sha256"], progress=False)
