"""Rule evaluate_calibration: ECE and reliability diagram of P(real) on the test candidates."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters.calibration import (  # noqa: E402
    evaluate,
    read_calibration,
    read_matched_candidates,
)
from skydetect.clusters.detect import write_table_atomic  # noqa: E402
from skydetect.plots.calibration import plot_reliability  # noqa: E402

p = snakemake.params
calibrations = {d: read_calibration(f) for d, f in zip(p.detectors, snakemake.input.calibrations, strict=True)}  # fmt: skip
tables = {d: read_matched_candidates(f) for d, f in zip(p.detectors, snakemake.input.candidates, strict=True)}  # fmt: skip
table, curves = evaluate(calibrations, tables, p.n_bins, p.n_bootstrap, p.seed)
for row in table:
    log.info("%s: ECE %.4f [%.4f, %.4f] over %d test candidates; perfectly calibrated: %.4f",
             row["DETECTOR"], row["ECE"], row["ECE_LO95"], row["ECE_HI95"], row["N"],
             row["ECE_CALIBRATED"])  # fmt: skip
write_table_atomic(table, snakemake.output.table)
plot_reliability(curves, table, snakemake.output.figure)
