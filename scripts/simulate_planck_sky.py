"""Driver of rule simulate_planck_sky: mock HFI maps, y-map, truth and known catalogues."""

import logging
import os

from skydetect.logutil import setup_script_logging

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

truth = planck.truth_table(sky)
tmp = snakemake.output.truth + ".tmp.ecsv"
truth.write(tmp, format="ascii.ecsv", overwrite=True)
os.replace(tmp, snakemake.output.truth)
catalogs.write_psz2(snakemake.output.psz2, known["psz2"])
catalogs.write_mcxc(snakemake.output.mcxc, known["mcxc"])
catalogs.write_redmapper(snakemake.output.redmapper, known["redmapper"])
catalogs.write_sources(snakemake.output.sources, sky.sources)
log.info(
    "truth: %d clusters, %d with SNR > 4.5, %d known",
    len(truth),
    int((truth["SNR"] > 4.5).sum()),
    int(truth["KNOWN"].sum()),
)
