"""Driver of rule tune_ssd_best: best parameters of the optuna study, for train_ssd."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from skydetect.bubbles.tune import best_params, study_of_workers, write_json  # noqa: E402

sm = snakemake  # noqa: F821
study = study_of_workers([json.loads(Path(f).read_text()) for f in sm.input.trials])
best = best_params(sm.params.storage, study)
best["study"] = study
log.info(
    "best trial %d of %d: F2 %.4f with %s",
    best["trial"],
    best["n_trials"],
    best["value"],
    best["overrides"],
)
write_json(best, sm.output.best)
