"""Rule make_masks: the Galactic and point-source masks of the configured sky."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io.planck_masks import write_mask  # noqa: E402
from skydetect.sky.survey_masks import survey_masks  # noqa: E402

p = snakemake.params
masks = survey_masks(p.simulated, dict(snakemake.input.items()), dict(p.masks))
origin = "MOCK" if p.simulated else "PLANCK"
for name, keep in masks.items():
    path = snakemake.output[name]
    write_mask(path, keep, {"MASKNAME": name, "ORIGIN": origin})
    log.info("%s mask -> %s: sky fraction kept %.4f", name, path, keep.mean())
