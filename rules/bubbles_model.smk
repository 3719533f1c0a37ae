# Bubble detector, model side: optional optuna search (tune_ssd), SSD training
# (train_ssd, resumable from results/bubbles/models/{brun}/checkpoint/), whole-field
# detection (detect_bubbles), evaluation on the test fields (evaluate_bubbles) and the
# whole-plane survey catalogue merged across fields (bubble_survey).
# {brun} is the bubble run name (bubbles.train.run); file contracts in docs/dataflow.md.
# Paths (BUBBLE_PATHS), settings (BUB: config["bubbles"], BUBBLE_SPLITS) and input
# functions: rules/bubbles_common.smk.

# what a training (and each tuning trial) reads: the training fields, their negatives and
# groups, the validation windows and fields
SSD_TRAINING_INPUTS = {
    "train_fields": expand(BUBBLE_PATHS.aligned, field=BUBBLE_SPLITS["train"]),
    "catalog": BUBBLE_PATHS.catalog,
    "negatives": BUBBLE_TRAIN_NEGATIVES,
    "groups": BUBBLE_PATHS.negative_groups,
    "windows": fill(BUBBLE_PATHS.windows, bubble_split="validation"),
    "validation_fields": expand(
        BUBBLE_PATHS.aligned, field=BUBBLE_SPLITS["validation"]
    ),
}
# with tuning enabled, train_ssd also reads the study's best parameters
SSD_TUNED_INPUTS = (
    {"best_params": BUBBLE_PATHS.tune_best} if BUB["tune"]["enabled"] else {}
)


rule tune_ssd:
    input:
        **SSD_TRAINING_INPUTS,
    output:
        trials=BUBBLE_PATHS.tune_trials,
    log:
        "logs/tune_ssd/{brun}_{worker}.log",
    benchmark:
        "benchmarks/rules/tune_ssd/{brun}_{worker}.tsv"
    conda:
        ENV_GPU
    threads: BUB["train"]["threads"]
    resources:
        mem_mb=BUB["tune"]["mem_mb"],
        runtime=BUB["tune"]["runtime"],
    params:
        storage=BUBBLE_PATHS.tune_study,
        study_prefix="ssd_{brun}",
        trial_dir=BUBBLE_PATHS.tune_trial_dir,
        tune=computing_params(BUB["tune"]),
        train=computing_params(BUB["train"]),
        ssd=BUB["ssd"],
        detect=computing_params(BUB["detect"]),
        preprocess=BUB["preprocess"],
        half_width_factor=BUB["negatives"]["half_width_factor"],
        box_scale=BUB["windows"]["box_scale"],
        min_cover=BUB["evaluate"]["min_cover"],
        iou_threshold=BUB["evaluate"]["iou_threshold"],
        seed=config["seed"],
    script:
        "../scripts/tune_ssd.py"


rule tune_ssd_best:
    input:
        trials=expand(
            BUBBLE_PATHS.tune_trials,
            worker=range(BUB["tune"]["workers"]),
            allow_missing=True,
        ),
    output:
        best=BUBBLE_PATHS.tune_best,
    log:
        "logs/tune_ssd_best/{brun}.log",
    benchmark:
        "benchmarks/rules/tune_ssd_best/{brun}.tsv"
    conda:
        ENV_ML
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        storage=BUBBLE_PATHS.tune_study,
    script:
        "../scripts/tune_ssd_best.py"


rule train_ssd:
    input:
        **SSD_TRAINING_INPUTS,
        **SSD_TUNED_INPUTS,
    output:
        model=BUBBLE_PATHS.model,
        weights=BUBBLE_PATHS.weights,
        history=BUBBLE_PATHS.history,
        curve=report(
            BUBBLE_PATHS.learning_curve,
            caption="report/bubble_learning_curve.rst",
            category="Bubble detector",
        ),
    log:
        "logs/train_ssd/{brun}.log",
    benchmark:
        "benchmarks/rules/train_ssd/{brun}.tsv"
    priority: PRIORITY.bubble_training
    conda:
        ENV_GPU
    threads: BUB["train"]["threads"]
    resources:
        mem_mb=BUB["train"]["mem_mb"],
        runtime=BUB["train"]["runtime"],
    params:
        train=computing_params(BUB["train"]),
        ssd=BUB["ssd"],
        detect=computing_params(BUB["detect"]),
        preprocess=BUB["preprocess"],
        half_width_factor=BUB["negatives"]["half_width_factor"],
        box_scale=BUB["windows"]["box_scale"],
        min_cover=BUB["evaluate"]["min_cover"],
        iou_threshold=BUB["evaluate"]["iou_threshold"],
        windows=BUB["windows"],
        seed=config["seed"],
    script:
        "../scripts/train_ssd.py"


rule detect_bubbles:
    input:
        model=BUBBLE_PATHS.model,
        weights=BUBBLE_PATHS.weights,
        field=BUBBLE_PATHS.aligned,
        catalog=BUBBLE_TRUTH,  # the figure's true bubbles
    output:
        ecsv=BUBBLE_PATHS.detections,
        csv=BUBBLE_PATHS.detections_csv,
        figure=report(
            BUBBLE_PATHS.detection_figure,
            caption="report/bubble_detections.rst",
            category="Bubble detector",
        ),
    log:
        "logs/detect_bubbles/{brun}_{field}.log",
    benchmark:
        "benchmarks/rules/detect_bubbles/{brun}_{field}.tsv"
    conda:
        ENV_ML
    threads: BUB["detect"]["threads"]
    resources:
        # the field, its filled and smoothed copies and one chunk of windows, plus the
        # network (benchmarks/results/bubbles_scale.md: 3° x 2° at 1.2")
        mem_mb=bubble_field_mem(5, base=BUB["detect"]["mem_mb"]),
        runtime=BUB["detect"]["runtime"],
    params:
        detect=computing_params(BUB["detect"]),
        windows=BUB["windows"],
        preprocess=BUB["preprocess"],
    script:
        "../scripts/detect_bubbles.py"


# The whole plane: the detections of every survey field, duplicates across overlapping
# fields removed by NMS in sky coordinates, matched to MWP (KNOWN / NEW).
rule bubble_survey:
    input:
        detections=expand(
            BUBBLE_PATHS.detections, field=SURVEY_FIELDS, allow_missing=True
        ),
        catalog=BUBBLE_PATHS.catalog,
    output:
        fits=BUBBLE_PATHS.survey,
        csv=BUBBLE_PATHS.survey_csv,
        counts=BUBBLE_PATHS.survey_counts,
        figure=report(
            BUBBLE_PATHS.survey_figure,
            caption="report/bubble_survey.rst",
            category="Bubble detector",
        ),
    log:
        "logs/bubble_survey/{brun}.log",
    benchmark:
        "benchmarks/rules/bubble_survey/{brun}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        survey=BUBBLE_SURVEY,
        box_scale=BUB["windows"]["box_scale"],
        fields=SURVEY_FIELDS,
        field_lon={
            f: [
                field_center(f)[0] - BUBBLE_SURVEY["field_width_deg"] / 2,
                field_center(f)[0] + BUBBLE_SURVEY["field_width_deg"] / 2,
            ]
            for f in SURVEY_FIELDS
        },
    script:
        "../scripts/bubble_survey.py"


rule evaluate_bubbles:
    input:
        detections=expand(
            BUBBLE_PATHS.detections, field=BUBBLE_SPLITS["test"], allow_missing=True
        ),
        windows=fill(BUBBLE_PATHS.windows, bubble_split="test"),
        # coverage (finite 8 µm data) for the chance rate's random boxes
        fields=expand(BUBBLE_PATHS.aligned, field=BUBBLE_SPLITS["test"]),
    output:
        summary=BUBBLE_PATHS.evaluation,
        table=report(
            BUBBLE_PATHS.evaluation_table,
            caption="report/bubble_evaluation.rst",
            category="Bubble detector",
        ),
    log:
        "logs/evaluate_bubbles/{brun}.log",
    benchmark:
        "benchmarks/rules/evaluate_bubbles/{brun}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        # one aligned field at a time plus the coverage maps of all test fields
        mem_mb=bubble_field_mem(2, base=2000),
        runtime=10,
    params:
        min_cover=BUB["evaluate"]["min_cover"],
        iou_threshold=BUB["evaluate"]["iou_threshold"],
        chance_draws=BUB["evaluate"]["chance_draws"],
        seed=config["seed"],
    script:
        "../scripts/evaluate_bubbles.py"


# Recall by injection: synthetic bubbles painted into each field of bubbles.inject.fields,
# detection re-run on the windows near them (per field), recall per MajAxis x contrast cell
# over the fields (skydetect.bubbles.inject, skydetect.bubbles.injection_table).
BUBBLE_INJECT_CFG = BUB["inject"]
# the fields of each name bubbles.inject.fields may give
BUBBLE_INJECT_SETS = {
    "validation": BUBBLE_SPLITS["validation"],
    "test": BUBBLE_SPLITS["test"],
    "survey": SURVEY_FIELDS,
    "mosaics": list(BUBBLE_MOSAICS),
}
BUBBLE_INJECT_FIELDS = sorted(
    {f for s in BUBBLE_INJECT_CFG["fields"] for f in BUBBLE_INJECT_SETS[s]}
)
if "bubbles" in config["detectors"] and BUBBLE_INJECT_CFG["enabled"]:
    from skydetect.bubbles.inject import check_inject_config

    check_inject_config(BUBBLE_INJECT_CFG)
    if not BUBBLE_INJECT_FIELDS:
        raise ValueError(
            "config key 'bubbles.inject.fields' "
            f"({', '.join(BUBBLE_INJECT_CFG['fields'])}) selects no field: enable "
            "bubbles.survey, name bubbles.mosaics or choose test / validation"
        )


rule inject_bubbles:
    input:
        model=BUBBLE_PATHS.model,
        weights=BUBBLE_PATHS.weights,
        field=BUBBLE_PATHS.aligned,
        catalog=BUBBLE_PATHS.catalog,
        detections=BUBBLE_PATHS.detections,
    output:
        injections=BUBBLE_PATHS.injections,
        truth=BUBBLE_PATHS.injection_truth,
    log:
        "logs/inject_bubbles/{brun}_{field}.log",
    benchmark:
        "benchmarks/rules/inject_bubbles/{brun}_{field}.tsv"
    conda:
        ENV_ML
    threads: BUB["detect"]["threads"]
    resources:
        # detect_bubbles' memory plus the injected copy of the field
        mem_mb=bubble_field_mem(6, base=BUB["detect"]["mem_mb"]),
        runtime=BUB["detect"]["runtime"],
    params:
        inject=BUBBLE_INJECT_CFG,
        detect=computing_params(BUB["detect"]),
        windows=BUB["windows"],
        preprocess=BUB["preprocess"],
        iou_threshold=BUB["evaluate"]["iou_threshold"],
        beams_arcsec=[
            BUB["simulate"]["beam_8um_arcsec"],
            BUB["simulate"]["beam_24um_arcsec"],
        ],
        seed=config["seed"],
    script:
        "../scripts/inject_bubbles.py"


rule injection_recall:
    input:
        injections=expand(
            BUBBLE_PATHS.injections, field=BUBBLE_INJECT_FIELDS, allow_missing=True
        ),
        truth=expand(
            BUBBLE_PATHS.injection_truth,
            field=BUBBLE_INJECT_FIELDS,
            allow_missing=True,
        ),
    output:
        table=report(
            BUBBLE_PATHS.recall,
            caption="report/bubble_injection.rst",
            category="Bubble detector",
        ),
        figure=report(
            BUBBLE_PATHS.recall_figure,
            caption="report/bubble_injection.rst",
            category="Bubble detector",
        ),
    log:
        "logs/injection_recall/{brun}.log",
    benchmark:
        "benchmarks/rules/injection_recall/{brun}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        inject=BUBBLE_INJECT_CFG,
        fields=BUBBLE_INJECT_FIELDS,
        iou_threshold=BUB["evaluate"]["iou_threshold"],
    script:
        "../scripts/injection_recall.py"
