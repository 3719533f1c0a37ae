"""Rule scorecard: every detector scored on the same truth, tiles and matching rules."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from astropy.table import Table  # noqa: E402

from skydetect.clusters.detect import write_table_atomic  # noqa: E402
from skydetect.clusters.scorecard_table import build_scorecard, scorecard_markdown  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.plots.detections import plot_purity_completeness  # noqa: E402

p = snakemake.params
candidates = {
    name: Table.read(path, format="fits")
    for name, path in zip(p.detectors, snakemake.input.candidates, strict=True)
}
truth = Table.read(snakemake.input.truth, format="ascii.ecsv")
table, curves, bins = build_scorecard(candidates, truth, p.tiles, dict(p.evaluate), p.seed)
md = scorecard_markdown(table, p.command)
log.info("\n%s", md)
print(md)
write_table_atomic(table, snakemake.output.table)
write_table_atomic(curves, snakemake.output.curves)
plot_purity_completeness(curves, bins, table, snakemake.output.figure)
with atomic_path(snakemake.output.markdown) as tmp:
    tmp.write_text(md)
