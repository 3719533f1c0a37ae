"""Driver of rule train_ssd: train the bubble SSD (skydetect.bubbles.train)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

import json

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

from pathlib import Path  # noqa: E402

from skydetect.bubbles.catalog import read_catalog  # noqa: E402
from skydetect.bubbles.detect import DetectSettings  # noqa: E402
from skydetect.bubbles.scales import check_catalog_scales  # noqa: E402
from skydetect.bubbles.train import (  # noqa: E402
    TrainSettings,
    build_and_train,
    files_key,
    load_all_data,
    set_threads,
)
from skydetect.plots.bubble_detections import plot_learning_curve  # noqa: E402

sm = snakemake  # noqa: F821
p = sm.params
set_threads(sm.threads)
overrides = {}
if sm.input.get("best_params"):
    overrides = json.loads(Path(sm.input.best_params).read_text())["overrides"]
    log.info("tuned parameters: %s", overrides)
settings = TrainSettings.from_config(p.train, p.ssd, min_cover=p.min_cover, iou_threshold=p.iou_threshold, **overrides)
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
# every clear bubble must appear in some window at a scale the crops train on
check_catalog_scales(
    read_catalog(sm.input.catalog),
    p.windows,
    crops.fields[0].pixel_arcsec,
    crops.fields[0].shape,
    p.half_width_factor,
    where=sm.input.catalog,
)
out_dir = Path(sm.output.model).parent
res = build_and_train(
    p.ssd,
    p.preprocess["input_size"],
    settings,
    DetectSettings.from_config(p.detect),
    crops,
    negatives,
    validation,
    out_dir,
    p.seed,
    extra={"preprocess": p.preprocess, "tuned": overrides or None},
    resume_key=files_key(sm.input),
    validation_sample=validation_sample,
)
plot_learning_curve(res["history"], sm.output.curve, title=f"bubble SSD, run {sm.wildcards.brun}")
log.info(
    "best epoch %s: validation F2 %.3f at threshold %.2f",
    res["best_epoch"],
    res["val_f2"],
    res["threshold"],
)
