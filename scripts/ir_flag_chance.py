"""Rule ir_flag_chance: how often the catalogue's IR_FLAG is raised at random positions."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

import json  # noqa: E402

from skydetect.clusters.ir_flag import bright_ir_sources, chance_rate  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.io.catalogs import read_source_catalogs  # noqa: E402

cfg = snakemake.params.catalog
sources = read_source_catalogs(snakemake.input.sources, snakemake.params.sources_format)
ir = bright_ir_sources(sources, cfg["ir_flux_column"], cfg["ir_flux_min_mjy"])
res = chance_rate(snakemake.params.tiles, ir, snakemake.params.radius_arcmin,
                  cfg["ir_chance_draws"], snakemake.params.seed)  # fmt: skip
res.update(flux_column=cfg["ir_flux_column"], flux_min_mjy=float(cfg["ir_flux_min_mjy"]))
log.info("IR flag chance rate %.4f +- %.4f (%d IR sources >= %g mJy in %s, %d random positions)",
         res["rate"], res["rate_err"], res["n_sources"], res["flux_min_mjy"],
         res["flux_column"], res["n_random"])  # fmt: skip
with atomic_path(snakemake.output.chance) as tmp, open(tmp, "w") as fh:
    json.dump(res, fh, indent=2)
