# Bubble detector, model side (issue 8): optional optuna search (tune_ssd), SSD training
# (train_ssd, resumable from results/bubbles/models/{brun}/checkpoint/), whole-tile
# detection (detect_bubbles) and evaluation on the test fields (evaluate_bubbles).
# {brun} is the bubble run name (bubbles.train.run); file contracts in docs/dataflow.md.
from skydetect.sky.spitzer import field_name as _ssd_field_name

_SSD = config["bubbles"]
_SSD_FIELDS = {
    split: [_ssd_field_name(glon) for glon in _SSD["tiles"][split]]
    for split in ("train", "validation", "test")
}
_SSD_DETECT_FIELDS = sorted(
    {f for split in _SSD["detect"]["splits"] for f in _SSD_FIELDS[split]}
)
_SSD_TUNING = "results/bubbles/tuning/{brun}"


wildcard_constraints:
    brun=r"[A-Za-z0-9_\-]+",
    worker=r"\d+",


_SSD_INPUTS = {
    "train_tiles": expand(
        "results/bubbles/aligned/{field}.fits", field=_SSD_FIELDS["train"]
    ),
    "catalog": "results/bubbles/catalog.ecsv",
    "negatives": expand(
        "results/bubbles/negatives/{field}.h5", field=_SSD_FIELDS["train"]
    ),
    "clusters": "results/bubbles/negatives/clusters.ecsv",
    "windows": "results/bubbles/windows/validation.h5",
    "validation_tiles": expand(
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
        ENV_ML
    threads: _SSD["train"]["threads"]
    resources:
        mem_mb=_SSD["tune"]["mem_mb"],
        runtime=_SSD["tune"]["runtime"],
    params:
        storage=lambda wc: f"{_SSD_TUNING}/study.journal".format(brun=wc.brun),
        study=lambda wc: f"ssd_{wc.brun}",
        trial_dir=lambda wc: f"{_SSD_TUNING}/trials_{wc.worker}".format(brun=wc.brun),
        tune=_SSD["tune"],
        train=_SSD["train"],
        ssd=_SSD["ssd"],
        detect=_SSD["detect"],
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
        storage=lambda wc: f"{_SSD_TUNING}/study.journal".format(brun=wc.brun),
        study=lambda wc: f"ssd_{wc.brun}",
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
    conda:
        ENV_ML
    threads: _SSD["train"]["threads"]
    resources:
        mem_mb=_SSD["train"]["mem_mb"],
        runtime=_SSD["train"]["runtime"],
    params:
        train=_SSD["train"],
        ssd=_SSD["ssd"],
        detect=_SSD["detect"],
        preprocess=_SSD["preprocess"],
        k_range=_SSD["negatives"]["half_width_factor"],
        box_scale=_SSD["windows"]["box_scale"],
        min_cover=_SSD["evaluate"]["min_cover"],
        seed=config["seed"],
    script:
        "../scripts/train_ssd.py"


rule detect_bubbles:
    input:
        model="results/bubbles/models/{brun}/model.json",
        weights="results/bubbles/models/{brun}/weights.h5",
        tile="results/bubbles/aligned/{field}.fits",
        catalog="results/bubbles/catalog.ecsv",
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
        mem_mb=_SSD["detect"]["mem_mb"],
        runtime=_SSD["detect"]["runtime"],
    params:
        detect=_SSD["detect"],
        windows=_SSD["windows"],
        preprocess=_SSD["preprocess"],
    script:
        "../scripts/detect_bubbles.py"


rule evaluate_bubbles:
    input:
        detections=expand(
            "results/bubbles/detections/{{brun}}/{field}.ecsv",
            field=_SSD_FIELDS["test"],
        ),
        windows="results/bubbles/windows/test.h5",
    output:
        summary="results/bubbles/evaluation/{brun}/summary.json",
        table="results/bubbles/evaluation/{brun}/summary.txt",
    log:
        "logs/evaluate_bubbles/{brun}.log",
    benchmark:
        "benchmarks/rules/evaluate_bubbles/{brun}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        min_cover=_SSD["evaluate"]["min_cover"],
        iou_threshold=_SSD["evaluate"]["iou_threshold"],
    script:
        "../scripts/evaluate_bubbles.py"


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
