"""Mock GLIMPSE 8 µm / MIPSGAL 24 µm mosaics of one field, their truth and the volunteers'
catalogue of it (the one the detector trains on)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import read_mwp, write_catalog  # noqa: E402
from skydetect.io.spitzer import write_mosaic  # noqa: E402
from skydetect.sky.bubble_mock import with_statistics  # noqa: E402
from skydetect.sky.spitzer import field_catalog, simulate_field  # noqa: E402

field = snakemake.wildcards.field
cfg = snakemake.params.simulate
clear = snakemake.input.get("clear_names_from", None)
if "statistics_from" in snakemake.input.keys():
    cfg = with_statistics(cfg, read_mwp(snakemake.input.statistics_from, clear))
    log.info(
        "MWP statistics of %s: %.1f bubbles/deg² at b = 0, scale height %.2f°, clear %.2f",
        snakemake.input.statistics_from,
        cfg["density_per_deg2"],
        cfg["glat_scale_deg"],
        cfg["clear_fraction"],
    )
real = None
if "positions_from" in snakemake.input.keys():
    real = read_mwp(snakemake.input.positions_from, clear)
    log.info("bubbles at the positions of %s (%d rows)", snakemake.input.positions_from, len(real))
i4, m1, truth = simulate_field(field, cfg, snakemake.params.seed, real)
catalog = field_catalog(truth, field, cfg, snakemake.params.seed)
log.info(
    "field %s: 8 µm %s, 24 µm %s, %d bubbles (%d clear); catalogue %d (%d clear, %d spurious)",
    field,
    i4.data.shape,
    m1.data.shape,
    len(truth),
    int(truth["CLEAR"].sum()),
    len(catalog),
    int(catalog["CLEAR"].sum()),
    int((catalog["TRUE_MWP"] == "").sum()),
)
write_mosaic(snakemake.output.i4, i4)
write_mosaic(snakemake.output.m1, m1)
write_catalog(snakemake.output.truth, truth)
write_catalog(snakemake.output.catalog, catalog)
