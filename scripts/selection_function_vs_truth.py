"""Rule selection_function_vs_truth: injected vs truth completeness per cell (simulated sky)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from astropy.table import Table, vstack  # noqa: E402

from skydetect.clusters import selfunc  # noqa: E402
from skydetect.clusters.detect import write_table_atomic  # noqa: E402

p = snakemake.params
injections = selfunc.read_injections(
    snakemake.input.injections, p.inject["y5r500_edges"], p.inject["theta500_edges"]
)
y_edges, theta_edges = p.inject["y5r500_edges"], p.inject["theta500_edges"]
rows = []
for run, matched in zip(p.runs, snakemake.input.matched, strict=True):
    # the evaluation's DETECTED flags hold at its operating point: the injections likewise
    score, threshold = p.operating_points[run]
    thr = {run: {"score": score, "threshold": float(threshold)}}
    inj = selfunc.completeness_grid(injections, [run], thr, y_edges, theta_edges)[run]
    truth = selfunc.truth_completeness(Table.read(matched, format="ascii.ecsv"), y_edges,
                                       theta_edges)  # fmt: skip
    t = selfunc.compare_with_truth(inj, truth, y_edges, theta_edges)
    t.add_column(run, name="DETECTOR", index=0)
    t.add_column(float(threshold), name="THRESHOLD", index=1)
    both = (t["N_INJ"] > 0) & (t["N_TRUTH"] > 0)
    log.info("%s at %s >= %g: %d of %d cells with both agree within their intervals", run, score,
             threshold, int(t["AGREE"].sum()), int(both.sum()))  # fmt: skip
    rows.append(t)
write_table_atomic(vstack(rows), snakemake.output.table)
