"""Rule cluster_catalog: the published catalogue of one detector (results/catalogs/)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

import json  # noqa: E402

import numpy as np  # noqa: E402
from astropy.table import Table, vstack  # noqa: E402

from skydetect.clusters import cluster_catalog as cc  # noqa: E402
from skydetect.clusters.calibration import apply_calibration, read_calibration  # noqa: E402
from skydetect.clusters.crossmatch import galactic  # noqa: E402
from skydetect.clusters.detect import write_table_atomic  # noqa: E402
from skydetect.clusters.ir_flag import bright_ir_sources, ir_flags  # noqa: E402
from skydetect.io.catalogs import read_catalog, read_source_catalogs  # noqa: E402
from skydetect.io.planck_masks import read_mask  # noqa: E402
from skydetect.sky.survey_masks import mask_flags  # noqa: E402

cfg, run = snakemake.params.catalog, snakemake.wildcards.run
candidates = Table.read(snakemake.input.candidates, format="fits")
phot = vstack([Table.read(p, format="ascii.ecsv") for p in snakemake.input.photometry])
photometry = cc.align_photometry(candidates, phot)
coords = galactic(candidates, what=snakemake.input.candidates)
known = {name: cc.known_table(name, read_catalog(name, snakemake.input[name]))
         for name in snakemake.params.known}  # fmt: skip
matches = cc.match_known(coords, known, snakemake.params.cluster_radius_arcmin)
sources = read_source_catalogs(snakemake.input.sources, snakemake.params.sources_format)
ir = bright_ir_sources(sources, cfg["ir_flux_column"], cfg["ir_flux_min_mjy"])
with open(snakemake.input.chance) as fh:
    chance = json.load(fh)
in_gal, in_ps = mask_flags(coords.l.deg, coords.b.deg, read_mask(snakemake.input.galactic_mask),
                           read_mask(snakemake.input.point_source_mask))  # fmt: skip
p_real = None  # no calibration (a real sky): NaN
if snakemake.input.get("calibration"):
    p_real = apply_calibration(read_calibration(snakemake.input.calibration), candidates)
catalog = cc.build_catalog(
    candidates,
    run,
    photometry,
    matches,
    ir_flags(coords, ir, snakemake.params.source_radius_arcmin),
    precedence=cfg["redshift_precedence"],
    p_real=p_real,
    mask_gal=in_gal,
    mask_ps=in_ps,
    prefix=cfg["name_prefix"],
)
header = {  # keyword: (value, meaning)
    "MATCHRAD": (float(snakemake.params.cluster_radius_arcmin), "known-cluster match radius [arcmin]"),
    "KNOWNCAT": (",".join(known) or "none", "known-cluster catalogues matched"),
    "ZPREC": (",".join(cfg["redshift_precedence"]), "REDSHIFT precedence"),
    "IRCOLUMN": (cfg["ir_flux_column"], "IR_FLAG flux column"),
    "IRFLUXMN": (float(cfg["ir_flux_min_mjy"]), "IR_FLAG flux threshold [mJy]"),
    "IRRAD": (float(snakemake.params.source_radius_arcmin), "IR_FLAG radius [arcmin]"),
    "IRCHANCE": (float(chance["rate"]), "IR_FLAG rate at random positions in the tiles"),
}  # fmt: skip
catalog.meta.update({key: value for key, (value, _) in header.items()})
catalog.meta["comments"] += [f"{key}: {text}" for key, (_, text) in header.items()]
catalog.meta["MASKPOL"] = snakemake.params.mask_policy
catalog.meta["comments"] += ["MASKPOL: flag (masked candidates kept, MASK_GAL/MASK_PS set) or drop"]
if snakemake.params.mask_policy == "drop":
    n_before = len(catalog)
    catalog = catalog[~(catalog["MASK_GAL"] | catalog["MASK_PS"])]
    log.info("%d of %d candidates inside the masks dropped", n_before - len(catalog), n_before)
n_nan = int(np.isnan(catalog["SNR"]).sum())
if n_nan:
    log.warning("%d candidate(s) without forced photometry (NaN)", n_nan)
log.info("%s: %d entries, %d with a redshift, %d IR-flagged (chance rate %.4f)", run,
         len(catalog), int(np.isfinite(catalog["REDSHIFT"]).sum()),
         int(catalog["IR_FLAG"].sum()), chance["rate"])  # fmt: skip
write_table_atomic(catalog, snakemake.output.fits)
write_table_atomic(catalog, snakemake.output.csv)
