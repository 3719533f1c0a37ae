# Cluster segmentation network (issue 4): train the U-Net on the assembled datasets.
# Resumable: a killed job started again continues from results/models/{run}/checkpoint/.


rule train_segmentation:
    input:
        train="results/datasets/train.h5",
        validation="results/datasets/validation.h5",
        normalisation="results/datasets/normalisation.json",
    output:
        model="results/models/{run}/model.json",
        weights="results/models/{run}/weights.h5",
        history="results/models/{run}/history.csv",
        figure=report(
            "results/models/{run}/learning_curve.png",
            caption="report/learning_curve.rst",
            category="Cluster model",
        ),
    log:
        "logs/train_segmentation/{run}.log",
    benchmark:
        "benchmarks/rules/train_segmentation/{run}.tsv"
    conda:
        ENV_ML
    threads: 8
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=config["clusters"]["train"]["gpus"],
    params:
        model=config["clusters"]["model"],
        train=config["clusters"]["train"],
        seed=config["seed"],
    script:
        "../scripts/train_segmentation.py"


if "clusters" in config["detectors"]:
    FINAL_OUTPUT += expand(
        "results/models/{run}/{name}",
        run=config["clusters"]["train"]["run"],
        name=["model.json", "weights.h5", "history.csv", "learning_curve.png"],
    )
