# Cluster training data: training catalogue, per-tile patches, normalisation from the
# training split, one HDF5 dataset per split, example figures. Tile lists, paths
# (DATASET_PATHS) and input functions are in rules/common.smk.

# per-tile job memory: tile + margin + patches of the tile (<= 1 GiB at nside 2048)
PATCH_MEM_MB = 1000 if config["planck"]["nside"] <= 2048 else 3000


rule build_catalog:
    input:
        unpack(build_catalog_inputs),
    output:
        DATASET_PATHS.catalog,
    log:
        "logs/build_catalog/{name}.log",
    benchmark:
        "benchmarks/rules/build_catalog/{name}.tsv"
    wildcard_constraints:
        name="planck_z|planck_no-z|MCXC|RM30|RM50",
    priority: PRIORITY.cluster_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        merge_radius_arcmin=CL["catalog"]["merge_radius_arcmin"],
        training_tiles=TRAIN_TILES,
    script:
        "../scripts/build_catalog.py"


rule cut_patches:
    input:
        tile=TILE_PATHS.tile,
        catalog=TRAINING_CATALOG,
    output:
        DATASET_PATHS.patches,
    log:
        "logs/cut_patches/{split}_{tile}.log",
    benchmark:
        "benchmarks/rules/cut_patches/{split}_{tile}.tsv"
    wildcard_constraints:
        split="train|validation",
    priority: PRIORITY.cluster_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=PATCH_MEM_MB,
        runtime=30,
    params:
        split="{split}",
        split_tiles=split_tiles_of,
        bands=BANDS,
        patch=CL["patch"],
        mask=CL["mask"],
        seed=config["seed"],
    script:
        "../scripts/cut_patches.py"


rule cut_cover:
    input:
        tile=TILE_PATHS.tile,
        catalog=TRAINING_CATALOG,
    output:
        DATASET_PATHS.cover,
    log:
        "logs/cut_cover/{tile}.log",
    benchmark:
        "benchmarks/rules/cut_cover/{tile}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=PATCH_MEM_MB,
        runtime=30,
    params:
        split="cover",
        split_tiles=None,
        bands=BANDS,
        patch=CL["patch"],
        mask=CL["mask"],
        seed=config["seed"],
        prediction_nside=CL["detect"]["nside"],
    script:
        "../scripts/cut_patches.py"


rule normalise:
    input:
        patches=DATASET_PATCHES["train"],
    output:
        DATASET_PATHS.normalisation,
    log:
        "logs/normalise/all.log",
    benchmark:
        "benchmarks/rules/normalise/all.tsv"
    priority: PRIORITY.cluster_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000
        + CL["normalise"]["max_patches"]
        * CL["patch"]["size"] ** 2
        * len(BANDS)
        * 12
        // 10**6,
        runtime=20,
    params:
        bands=BANDS,
        method=CL["normalise"]["method"],
        max_patches=CL["normalise"]["max_patches"],
        seed=config["seed"],
    script:
        "../scripts/normalise.py"


rule assemble:
    input:
        patches=split_patches,
        normalisation=DATASET_PATHS.normalisation,
    output:
        DATASET_PATHS.dataset,
    log:
        "logs/assemble/{split}.log",
    benchmark:
        "benchmarks/rules/assemble/{split}.tsv"
    priority: PRIORITY.cluster_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        bands=BANDS,
    script:
        "../scripts/assemble.py"


rule plot_dataset:
    input:
        DATASET_PATHS.dataset,
    output:
        report(
            DATASET_PATHS.examples,
            caption="report/dataset_examples.rst",
            category="Cluster training data",
            subcategory="{split}",
        ),
    log:
        "logs/plot_dataset/{split}.log",
    benchmark:
        "benchmarks/rules/plot_dataset/{split}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        n_examples=4,
        seed=config["seed"],
    script:
        "../scripts/plot_dataset.py"
