# Cluster segmentation network: train the U-Net runs (clusters.train.runs) on the assembled
# datasets, each on its own input bands (skydetect.clusters.datasets.run_bands).
# Resumable: a killed job started again continues from results/models/{run}/checkpoint/.
# Paths (TRAIN_PATHS), run settings and parameter functions: rules/common.smk.
rule select_run_bands:
    input:
        DATASET_PATHS.dataset,
    output:
        temp(TRAIN_PATHS.run_dataset),
    log:
        "logs/select_run_bands/{run}_{split}.log",
    benchmark:
        "benchmarks/rules/select_run_bands/{run}_{split}.tsv"
    wildcard_constraints:
        run=one_of(UNET_RUNS),
        split="train|validation",
    priority: PRIORITY.cluster_training
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
        train=fill(TRAIN_PATHS.run_dataset, split="train"),
        validation=fill(TRAIN_PATHS.run_dataset, split="validation"),
        normalisation=DATASET_PATHS.normalisation,
    output:
        model=TRAIN_PATHS.model,
        weights=TRAIN_PATHS.weights,
        history=TRAIN_PATHS.history,
        figure=report(
            TRAIN_PATHS.learning_curve,
            caption="report/learning_curve.rst",
            category="Cluster model",
        ),
    log:
        "logs/train_segmentation/{run}.log",
    benchmark:
        "benchmarks/rules/train_segmentation/{run}.tsv"
    wildcard_constraints:
        run=one_of(UNET_RUNS),
    priority: PRIORITY.cluster_training
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
