# Bubble detector, model side: optional optuna search (tune_ssd), SSD training
# (train_ssd, resumable from results/bubbles/models/{brun}/checkpoint/), whole-field
# detection (detect_bubbles), evaluation on the test fields (evaluate_bubbles) and the
# whole-plane survey catalogue merged across fields (bubble_survey).
# {brun} is the bubble run name (bubbles.train.run); file contracts in docs/dataflow.md.

_SSD = config["bubbles"]
if "bubbles" in config["detectors"]:
    # every bubble size the config can produce must appear in some sliding window at a
    # scale the training crops cover; fails naming the uncovered sizes
    from skydetect.bubbles.scales import check_config_scales

    check_config_scales(_SSD)
_SSD_FIELDS = BUBBLE_SPLITS  # rules/bubbles_common.smk
_SSD_DETECT_FIELDS = sorted(
    {f for split in _SSD["detect"]["splits"] for f in _SSD_FIELDS[split]}
)
_SSD_TUNING = "results/bubbles/tuning/{brun}"


wildcard_constraints:
    brun=r"[A-Za-z0-9_\-]+",
    worker=r"\d+",


_SSD_INPUTS = {
    "train_fields": expand(
        "results/bubbles/aligned/{field}.fits", field=_SSD_FIELDS["train"]
    ),
    "catalog": "results/bubbles/catalog.ecsv",
    "negatives": expand(
        "results/bubbles/negatives/{field}.h5", field=_SSD_FIELDS["train"]
    ),
    "groups": BUBBLE_NEG_GROUPS,
    "windows": "results/bubbles/windows/validation.h5",
    "validation_fields": expand(
        "results/bubbles/aligned/{field}.fits", field=_SSD_FIELDS["validation"]
    ),
}
# with tuning enabled, train_ssd also reads the study's best parameters
_SSD_TUNED = (
    {"best_params": f"{_SSD_TUNING}/best_params.json"}
    if _SSD["tune"]["enabled"]
    else {}
)


rule tune_ssd:
    input:
        **_SSD_INPUTS,
    output:
        trials=f"{_SSD_TUNING}/worker_{{worker}}.json",
    log:
        "logs/tune_ssd/{brun}_{worker}.log",
    benchmark:
        "benchmarks/rules/tune_ssd/{brun}_{worker}.tsv"
    conda:
        ENV_GPU
    threads: _SSD["train"]["threads"]
    resources:
        mem_mb=_SSD["tune"]["mem_mb"],
        runtime=_SSD["tune"]["runtime"],
    params:
        storage=f"{_SSD_TUNING}/study.journal",
        study_prefix="ssd_{brun}",
        trial_dir=f"{_SSD_TUNING}/trials_{{worker}}",
        tune=computing_params(_SSD["tune"]),
        train=computing_params(_SSD["train"]),
        ssd=_SSD["ssd"],
        detect=computing_params(_SSD["detect"]),
        preprocess=_SSD["preprocess"],
        k_range=_SSD["negatives"]["half_width_factor"],
        box_scale=_SSD["windows"]["box_scale"],
        min_cover=_SSD["evaluate"]["min_cover"],
        seed=config["seed"],
    script:
        "../scripts/tune_ssd.py"


rule tune_ssd_best:
    input:
        trials=expand(
            f"{_SSD_TUNING}/worker_{{worker}}.json",
            worker=range(_SSD["tune"]["workers"]),
            allow_missing=True,
        ),
    output:
        best=f"{_SSD_TUNING}/best_params.json",
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
        storage=f"{_SSD_TUNING}/study.journal",
    script:
        "../scripts/tune_ssd_best.py"


rule train_ssd:
    input:
        **_SSD_INPUTS,
        **_SSD_TUNED,
    output:
        model="results/bubbles/models/{brun}/model.json",
        weights="results/bubbles/models/{brun}/weights.h5",
        history="results/bubbles/models/{brun}/history.csv",
        curve=report(
            "results/bubbles/models/{brun}/learning_curve.png",
            caption="report/bubble_learning_curve.rst",
            category="Bubble detector",
        ),
    log:
        "logs/train_ssd/{brun}.log",
    benchmark:
        "benchmarks/rules/train_ssd/{brun}.tsv"
    # the longest job of the default run: started as soon as its inputs exist, beside the
    # cluster side, rather than after it
    priority: 10
    conda:
        ENV_GPU
    threads: _SSD["train"]["threads"]
    resources:
        mem_mb=_SSD["train"]["mem_mb"],
        runtime=_SSD["train"]["runtime"],
    params:
        train=computing_params(_SSD["train"]),
        ssd=_SSD["ssd"],
        detect=computing_params(_SSD["detect"]),
        preprocess=_SSD["preprocess"],
        k_range=_SSD["negatives"]["half_width_factor"],
        box_scale=_SSD["windows"]["box_scale"],
        min_cover=_SSD["evaluate"]["min_cover"],
        windows=_SSD["windows"],
        seed=config["seed"],
    script:
        "../scripts/train_ssd.py"


rule detect_bubbles:
    input:
        model="results/bubbles/models/{brun}/model.json",
        weights="results/bubbles/models/{brun}/weights.h5",
        field="results/bubbles/aligned/{field}.fits",
        catalog=BUBBLE_TRUTH,  # the figure's true bubbles
    output:
        ecsv="results/bubbles/detections/{brun}/{field}.ecsv",
        csv="results/bubbles/detections/{brun}/{field}.csv",
        figure=report(
            "results/bubbles/figures/detections_{brun}_{field}.png",
            caption="report/bubble_detections.rst",
            category="Bubble detector",
        ),
    log:
        "logs/detect_bubbles/{brun}_{field}.log",
    benchmark:
        "benchmarks/rules/detect_bubbles/{brun}_{field}.tsv"
    conda:
        ENV_ML
    threads: _SSD["detect"]["threads"]
    resources:
        # the field, its filled and smoothed copies and one chunk of windows, plus the
        # network (benchmarks/results/bubbles_scale.md: 3° x 2° at 1.2")
        mem_mb=bubble_field_mem(5, base=BUB["detect"]["mem_mb"]),
        runtime=_SSD["detect"]["runtime"],
    params:
        detect=computing_params(_SSD["detect"]),
        windows=_SSD["windows"],
        preprocess=_SSD["preprocess"],
    script:
        "../scripts/detect_bubbles.py"


# The whole plane: the detections of every survey field, duplicates across overlapping
# fields removed by NMS in sky coordinates, matched to MWP (KNOWN / NEW).
rule bubble_survey:
    input:
        detections=expand(
            "results/bubbles/detections/{{brun}}/{field}.ecsv", field=SURVEY_FIELDS
        ),
        catalog=BUBBLE_CATALOG,
    output:
        fits="results/bubbles/survey/{brun}/catalog.fits",
        csv="results/bubbles/survey/{brun}/catalog.csv",
        counts="results/bubbles/survey/{brun}/counts.txt",
        figure=report(
            "results/bubbles/survey/{brun}/detections_along_l.png",
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
        box_scale=_SSD["windows"]["box_scale"],
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
            "results/bubbles/detections/{{brun}}/{field}.ecsv",
            field=_SSD_FIELDS["test"],
        ),
        windows="results/bubbles/windows/test.h5",
        # coverage (finite 8 µm data) for the chance rate's random boxes
        fields=[bubble_field(f) for f in _SSD_FIELDS["test"]],
    output:
        summary="results/bubbles/evaluation/{brun}/summary.json",
        table=report(
            "results/bubbles/evaluation/{brun}/summary.txt",
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
        min_cover=_SSD["evaluate"]["min_cover"],
        iou_threshold=_SSD["evaluate"]["iou_threshold"],
        chance_draws=_SSD["evaluate"]["chance_draws"],
        seed=config["seed"],
    script:
        "../scripts/evaluate_bubbles.py"


# Recall by injection: synthetic bubbles painted into each field of bubbles.inject.fields,
# detection re-run on the windows near them (per field), recall per MajAxis x contrast cell
# over the fields (skydetect.bubbles.inject, skydetect.bubbles.injection_table).
_INJ = _SSD["inject"]
_INJ_SETS = {
    "validation": _SSD_FIELDS["validation"],
    "test": _SSD_FIELDS["test"],
    "survey": SURVEY_FIELDS,
    "mosaics": list(BUBBLE_MOSAICS),
}
_INJ_FIELDS = sorted({f for s in _INJ["fields"] for f in _INJ_SETS[s]})
_INJ_DIR = "results/bubbles/injection/{brun}"
if "bubbles" in config["detectors"] and _INJ["enabled"]:
    from skydetect.bubbles.inject import check_inject_config

    check_inject_config(_INJ)
    if not _INJ_FIELDS:
        raise ValueError(
            f"config key 'bubbles.inject.fields' ({', '.join(_INJ['fields'])}) selects no "
            "field: enable bubbles.survey, name bubbles.mosaics or choose test / validation"
        )


rule inject_bubbles:
    input:
        model="results/bubbles/models/{brun}/model.json",
        weights="results/bubbles/models/{brun}/weights.h5",
        field="results/bubbles/aligned/{field}.fits",
        catalog="results/bubbles/catalog.ecsv",
        detections="results/bubbles/detections/{brun}/{field}.ecsv",
    output:
        injections=f"{_INJ_DIR}/{{field}}/injections.ecsv",
        truth=f"{_INJ_DIR}/{{field}}/truth.ecsv",
    log:
        "logs/inject_bubbles/{brun}_{field}.log",
    benchmark:
        "benchmarks/rules/inject_bubbles/{brun}_{field}.tsv"
    conda:
        ENV_ML
    threads: _SSD["detect"]["threads"]
    resources:
        # detect_bubbles' memory plus the injected copy of the field
        mem_mb=bubble_field_mem(6, base=BUB["detect"]["mem_mb"]),
        runtime=_SSD["detect"]["runtime"],
    params:
        inject=_INJ,
        detect=computing_params(_SSD["detect"]),
        windows=_SSD["windows"],
        preprocess=_SSD["preprocess"],
        iou_threshold=_SSD["evaluate"]["iou_threshold"],
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
            f"{_INJ_DIR}/{{field}}/injections.ecsv",
            field=_INJ_FIELDS,
            allow_missing=True,
        ),
        truth=expand(
            f"{_INJ_DIR}/{{field}}/truth.ecsv", field=_INJ_FIELDS, allow_missing=True
        ),
    output:
        table=report(
            "results/bubbles/evaluation/{brun}/injection.ecsv",
            caption="report/bubble_injection.rst",
            category="Bubble detector",
        ),
        figure=report(
            "results/bubbles/evaluation/{brun}/injection.png",
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
        inject=_INJ,
        fields=_INJ_FIELDS,
        iou_threshold=_SSD["evaluate"]["iou_threshold"],
    script:
        "../scripts/injection_recall.py"


if "bubbles" in config["detectors"]:
    _brun = _SSD["train"]["run"]
    FINAL_OUTPUT += expand(
        "results/bubbles/models/{brun}/{name}",
        brun=_brun,
        name=["model.json", "weights.h5", "history.csv", "learning_curve.png"],
    )
    FINAL_OUTPUT += expand(
        "results/bubbles/detections/{brun}/{field}.{ext}",
        brun=_brun,
        field=_SSD_DETECT_FIELDS,
        ext=["ecsv", "csv"],
    )
    FINAL_OUTPUT += expand(
        "results/bubbles/figures/detections_{brun}_{field}.png",
        brun=_brun,
        field=_SSD_DETECT_FIELDS,
    )
    FINAL_OUTPUT += expand(
        "results/bubbles/evaluation/{brun}/{name}",
        brun=_brun,
        name=["summary.json", "summary.txt"],
    )
    if _INJ["enabled"]:
        FINAL_OUTPUT += expand(
            "results/bubbles/evaluation/{brun}/injection.{ext}",
            brun=_brun,
            ext=["ecsv", "png"],
        )
    if SURVEY_FIELDS:
        FINAL_OUTPUT += expand(
            "results/bubbles/survey/{brun}/{name}",
            brun=_brun,
            name=[
                "catalog.fits",
                "catalog.csv",
                "counts.txt",
                "detections_along_l.png",
            ],
        )
    FINAL_OUTPUT += expand(
        "results/bubbles/detections/{brun}/{field}.{ext}",
        brun=_brun,
        field=list(BUBBLE_MOSAICS),
        ext=["ecsv", "csv"],
    )
