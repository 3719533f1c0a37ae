"""Driver of rule tune_ssd: one optuna worker on the shared study (skydetect.bubbles.tune)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

import shutil

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

from pathlib import Path  # noqa: E402

from skydetect.bubbles.detect import DetectSettings  # noqa: E402
from skydetect.bubbles.train import (  # noqa: E402
    TrainSettings,
    build_and_train,
    load_all_data,
    set_threads,
)
from skydetect.bubbles.tune import (  # noqa: E402
    data_digest,
    run_worker,
    settings_key,
    study_name,
    write_json,
)

sm = snakemake  # noqa: F821
p = sm.params
worker = int(sm.wildcards.worker)
set_threads(sm.threads)
crops, negatives, validation, validation_sample = load_all_data(
    sm.input.train_fields,
    sm.input.catalog,
    sm.input.negatives,
    sm.input.groups,
    sm.input.windows,
    sm.input.validation_fields,
    p.preprocess,
    p.seed,
    validation_background=p.train["validation_background_windows"],
    half_width_factor=p.half_width_factor,
    box_scale=p.box_scale,
)
detect = DetectSettings.from_config(p.detect)
keys = (
    "tune",
    "train",
    "ssd",
    "detect",
    "preprocess",
    "half_width_factor",
    "box_scale",
    "min_cover",
    "iou_threshold",
    "seed",
)
study = study_name(
    p.study_prefix, settings_key({k: getattr(p, k) for k in keys}), data_digest(sm.input)
)
log.info("study %s in %s", study, p.storage)
trial_root = Path(p.trial_dir)


def objective(overrides, number):
    settings = TrainSettings.from_config(
        p.train, p.ssd, min_cover=p.min_cover, iou_threshold=p.iou_threshold, epochs=p.tune["epochs"], **overrides
    )
    out = trial_root / f"trial_{number}"
    res = build_and_train(
        p.ssd,
        p.preprocess["input_size"],
        settings,
        detect,
        crops,
        negatives,
        validation,
        out,
        p.seed,
        validation_sample=validation_sample,
    )
    shutil.rmtree(out, ignore_errors=True)
    return res["val_f2"]


space = {k: p.tune[k] for k in ("learning_rate", "weight_decay", "batch_bubbles", "negative_ratio")}
trials = run_worker(
    p.storage,
    study,
    objective,
    p.tune["trials_per_worker"],
    p.seed,
    worker,
    space,
    p.tune["startup_trials"],
)
write_json(
    {"worker": worker, "study": study, "storage": p.storage, "trials": trials}, sm.output.trials
)
