"""Rule calibrate: P(real) of one detector's candidates, fitted on the validation set."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters.calibration import (  # noqa: E402
    fit_calibration,
    read_matched_candidates,
    write_calibration,
)

path = snakemake.input.candidates
detector = snakemake.wildcards.detector
calibration = fit_calibration(detector, read_matched_candidates(path), str(path))
if calibration["fallback"]:
    log.warning("%s: %s: P(real) is the constant (k + 1/2) / (n + 1) of its %d candidates",
                path, calibration["fallback"], calibration["n_fit"])  # fmt: skip
log.info("%s: %s calibration from %d candidates (%d true)", detector, calibration["method"],
         calibration["n_fit"], calibration["n_true"])  # fmt: skip
write_calibration(snakemake.output.calibration, calibration)
