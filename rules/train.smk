# Cluster segmentation network: train the U-Net runs (clusters.train.runs) on the assembled
# datasets, each on its own input bands (skydetect.clusters.datasets.run_bands).
# Resumable: a killed job started again continues from results/models/{run}/checkpoint/.
# Run settings and parameter functions: rules/common.smk.
rule select_run_bands:
    input:
        "results/datasets/{split}.h5",
    output:
        temp("results/datasets/{run}/{split}.h5"),
    log:
        "logs/select_run_bands/{run}_{split}.log",
    benchmark:
        "benchmarks/rules/select_run_bands/{run}_{split}.tsv"
    wildcard_constraints:
        run=one_of(UNET_RUNS),
        split="train|validation",
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        bands=unet_run_bands,
    script:
        "../scripts/select_run_bands.py"


rule train_segmentation:
    input:
        train="results/datasets/{run}/train.h5",
        validation="results/datasets/{run}/validation.h5",
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
    wildcard_constraints:
        run=one_of(UNET_RUNS),
    conda:
        ENV_GPU
    threads: CL["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        model=CL["model"],
        train=unet_train_params,
        seed=TRAIN_SEED,
    script:
        "../scripts/train_segmentation.py"


if "clusters" in config["detectors"]:
    FINAL_OUTPUT += expand(
        "results/models/{run}/{name}",
        run=UNET_RUNS,
        name=["model.json", "weights.h5", "history.csv", "learning_curve.png"],
    )
