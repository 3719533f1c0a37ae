"""Rule plot_mmf_tile: S/N map of a tile with the MMF detections (and the truth if simulated)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from astropy.table import Table  # noqa: E402

from skydetect.clusters.mmf import read_snr_map  # noqa: E402
from skydetect.plots.mmf import plot_snr_map  # noqa: E402

snr_map = read_snr_map(snakemake.input.snr)
detections = Table.read(snakemake.input.detections, format="ascii.ecsv")
truth = Table.read(snakemake.input.truth) if "truth" in snakemake.input.keys() else None
log.info("tile %s: %d detections", snakemake.wildcards.tile, len(detections))
plot_snr_map(snr_map, detections, snakemake.output.figure, truth, snakemake.params.snr_threshold)
