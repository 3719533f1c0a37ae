"""Rule choose_thresholds: every detector's threshold fixed on the validation tiles, and the
validation candidates flagged true or false against the simulated truth."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

import json  # noqa: E402

from astropy.table import Table  # noqa: E402

from skydetect.clusters.detect import write_table_atomic  # noqa: E402
from skydetect.clusters.heldout import choose_thresholds, matched_candidates  # noqa: E402
from skydetect.clusters.scorecard_table import area_radius, area_truth, sweep_grids  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402

p = snakemake.params
cfg = dict(p.evaluate)
candidates = {
    name: Table.read(path, format="fits")
    for name, path in zip(p.detectors, snakemake.input.candidates, strict=True)
}
truth = area_truth(Table.read(snakemake.input.truth, format="ascii.ecsv"), p.tiles,
                   cfg["min_truth_snr"])  # fmt: skip
radius = area_radius(truth, cfg)
chosen = choose_thresholds(candidates, truth, radius, p.tiles, sweep_grids(cfg),
                           cfg["purity_target"], p.combine_run)  # fmt: skip
for name, entry in chosen.items():
    log.info("%s: %s", name, entry)
for name, path in zip(p.detectors, snakemake.output.matched, strict=True):
    write_table_atomic(matched_candidates(candidates[name], truth, radius), path)
with atomic_path(snakemake.output.thresholds) as tmp:
    tmp.write_text(json.dumps(chosen, indent=2) + "\n")
