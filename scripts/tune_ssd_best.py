"""Driver of rule tune_ssd_best: best parameters of the optuna study, for train_ssd."""

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

from skydetect.bubbles.tune import best_params, write_json  # noqa: E402

sm = snakemake  # noqa: F821
best = best_params(sm.params.storage, sm.params.study)
log.info(
    "best trial %d of %d: F2 %.4f with %s",
    best["trial"],
    best["n_trials"],
    best["value"],
    best["overrides"],
)
write_json(best, sm.output.best)
