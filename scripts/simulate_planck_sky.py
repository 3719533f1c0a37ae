"""Driver of rule simulate_planck_sky: mock HFI maps, y-map, truth and known catalogues."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

import logging
import os

# healpy's transforms use OpenMP: as many threads as the rule was given (before healpy loads)
os.environ.setdefault("OMP_NUM_THREADS", str(snakemake.threads))

from skydetect.logutil import setup_script_logging  # noqa: E402

log = setup_script_logging(snakemake.log[0])

from skydetect.io import catalogs, fits_maps  # noqa: E402
from skydetect.sky import planck  # noqa: E402
from skydetect.sky.instrument import channel  # noqa: E402

logging.getLogger("healpy").setLevel(logging.WARNING)

params = planck.SimulationParams.from_config(snakemake.params.simulate)
bands = list(snakemake.params.bands)
sky = planck.MockSky(snakemake.params.nside, bands, snakemake.params.seed, params)
known = planck.known_catalogues(sky)

for band, path in zip(bands, snakemake.output.maps, strict=True):
    log.info("band %s -> %s", band, path)
    fits_maps.write_pr3_map(
        path,
        sky.channel_map(band),
        channel(band).unit,
        extra_header={"TELESCOP": "MOCK-PLANCK", "FREQ": band, "SEED": snakemake.params.seed},
    )

planck.write_truth(snakemake.output.truth, sky)
summary = planck.write_sky_summary(snakemake.output.summary, sky)
log.info("y-map sigma_Y / six channels: min %.3f (%s y-map)", summary["ymap_sigma_ratio_min"],
         summary["ymap"])  # fmt: skip
loss = summary["profile_mismatch_snr_loss"]
log.info("S/N the A10 template loses on the true profiles (%s): median %s, 16-84 %% %s-%s",
         loss["over"], loss["median"], loss["p16"], loss["p84"])  # fmt: skip
catalogs.write_psz2(snakemake.output.psz2, known["psz2"])
catalogs.write_mcxc(snakemake.output.mcxc, known["mcxc"])
catalogs.write_redmapper(snakemake.output.redmapper, known["redmapper"])
catalogs.write_sources(snakemake.output.sources, sky.sources)
log.info(
    "truth: %d clusters, %d with SNR > 4.5, %d known",
    len(sky.truth),
    int((sky.truth["SNR"] > 4.5).sum()),
    int(sky.truth["KNOWN"].sum()),
)
