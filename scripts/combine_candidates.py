"""Rule combine_candidates: the U-Net and MMF candidate catalogues merged by position."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from astropy.table import Table  # noqa: E402

from skydetect.clusters.detect import write_table_atomic  # noqa: E402
from skydetect.clusters.scorecard import merge_catalogues  # noqa: E402

unet = Table.read(snakemake.input.unet, format="fits")
mmf = Table.read(snakemake.input.mmf, format="fits")
merged = merge_catalogues(unet, mmf, snakemake.params.radius_arcmin)
merged.meta["RUN"] = "combined"
merged.meta["UNET_RUN"] = snakemake.params.unet_run
counts = {k: int((merged["DETECTORS"] == k).sum()) for k in ("both", "unet", "mmf")}
log.info("combined %s (%d) and mmf (%d): %d candidates %s", snakemake.params.unet_run,
         len(unet), len(mmf), len(merged), counts)  # fmt: skip
write_table_atomic(merged, snakemake.output.fits)
write_table_atomic(merged, snakemake.output.csv)
