"""Rule scorecard: every detector scored on the same truth, tiles and matching rules, at the
thresholds fixed on the validation tiles."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from astropy.table import Table  # noqa: E402

from skydetect.clusters.detect import write_table_atomic  # noqa: E402
from skydetect.clusters.heldout import matched_candidates, read_thresholds  # noqa: E402
from skydetect.clusters.scorecard_table import (  # noqa: E402
    area_radius,
    area_truth,
    build_scorecard,
    mass_z_completeness,
    scorecard_markdown,
)
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.plots.detections import (  # noqa: E402
    plot_completeness_mass_z,
    plot_purity_completeness,
)

p = snakemake.params
cfg = dict(p.evaluate)
candidates = {
    name: Table.read(path, format="fits")
    for name, path in zip(p.detectors, snakemake.input.candidates, strict=True)
}
truth = Table.read(snakemake.input.truth, format="ascii.ecsv")
thresholds = read_thresholds(snakemake.input.thresholds, p.detectors)
table, curves, bins, found = build_scorecard(candidates, truth, p.tiles, cfg, thresholds, p.seed)
table.meta["mask_policy"] = p.mask_policy
md = scorecard_markdown(table, p.command)
log.info("\n%s", md)
print(md)
area = area_truth(truth, p.tiles, cfg["min_truth_snr"])
for name, path in zip(p.detectors, snakemake.output.matched, strict=True):
    write_table_atomic(matched_candidates(candidates[name], area, area_radius(area, cfg)), path)
write_table_atomic(table, snakemake.output.table)
write_table_atomic(curves, snakemake.output.curves)
plot_purity_completeness(curves, bins, table, snakemake.output.figure)
mass_z_bins = {"M500": cfg["m500_bins"], "Z": cfg["z_bins"]}
plot_completeness_mass_z(mass_z_completeness(found, mass_z_bins), snakemake.output.mass_z)
with atomic_path(snakemake.output.markdown) as tmp:
    tmp.write_text(md)
