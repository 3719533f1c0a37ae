"""Rule selection_function: completeness per Y5R500 x theta500 cell from the injected tiles."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])


from skydetect.clusters import selfunc  # noqa: E402
from skydetect.plots.selfunc import plot_selection_function  # noqa: E402

p = snakemake.params
injections = selfunc.read_injections(
    snakemake.input.injections, p.inject["y5r500_edges"], p.inject["theta500_edges"]
)
thresholds = selfunc.read_thresholds(snakemake.input.thresholds, p.detectors)
y_edges, theta_edges = p.inject["y5r500_edges"], p.inject["theta500_edges"]
grid = selfunc.completeness_grid(injections, p.detectors, thresholds, y_edges, theta_edges,
                                 combined_parts=p.combined_parts)  # fmt: skip
for det, g in grid.items():
    log.info("%s: %d of %d injections found (%s)", det, int(g["k"].sum()), int(g["n"].sum()),
             thresholds[det])  # fmt: skip
meta = {"NTILES": len(snakemake.input.injections), "NINJ": len(injections), "SEED": p.seed}
selfunc.write_selection_function(snakemake.output.fits, grid, y_edges, theta_edges, thresholds,
                                 meta)  # fmt: skip
plot_selection_function(grid, y_edges, theta_edges, thresholds, snakemake.output.figure)
