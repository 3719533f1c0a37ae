# Cluster detection (issue 5): per-tile inference, detections, cross-match with known
# clusters and IR sources, completeness / purity against the truth, U-Net vs MMF.
# `{run}` is the U-Net run name (clusters.train.run) or `mmf` (rules/mmf.smk writes
# results/detections/mmf/{tile}.ecsv); crossmatch / evaluate serve both.
DETECT_CFG = config["clusters"]["detect"]
XMATCH_CFG = config["clusters"]["crossmatch"]
EVAL_CFG = config["clusters"]["evaluate"]
UNET_RUN = config["clusters"]["train"]["run"]
DETECT_TILES = (
    list(range(N_TILES))
    if DETECT_CFG["all_sky"]
    else [int(t) for t in config["clusters"]["tiles"]["test"]]
)
CLUSTER_RUNS = [UNET_RUN] + (
    ["mmf"] if config["clusters"]["mmf"].get("enabled", False) else []
)
SIMULATED_SKY = config["planck"]["source"] == "simulate"
KNOWN_CATALOGS = list(XMATCH_CFG["catalogs"])


rule predict_tile:
    input:
        cover="results/patches/cover/{tile}.h5",
        normalisation="results/datasets/normalisation.json",
        model="results/models/{run}/model.json",
        weights="results/models/{run}/weights.h5",
    output:
        prediction="results/predictions/{run}/{tile}.h5",
    log:
        "logs/predict_tile/{run}_{tile}.log",
    benchmark:
        "benchmarks/rules/predict_tile/{run}_{tile}.tsv"
    wildcard_constraints:
        run=r"(?!mmf$)[A-Za-z0-9_\-]+",
    conda:
        ENV_ML
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        batch_size=DETECT_CFG["batch_size"],
        nside=DETECT_CFG["nside"],
    script:
        "../scripts/predict_tile.py"


rule extract_detections:
    input:
        prediction="results/predictions/{run}/{tile}.h5",
    output:
        detections="results/detections/{run}/{tile}.ecsv",
    log:
        "logs/extract_detections/{run}_{tile}.log",
    benchmark:
        "benchmarks/rules/extract_detections/{run}_{tile}.tsv"
    wildcard_constraints:
        run=r"(?!mmf$)[A-Za-z0-9_\-]+",
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        detect=DETECT_CFG,
    script:
        "../scripts/extract_detections.py"


rule crossmatch:
    input:
        unpack(lambda wc: {name: planck_catalog_file(name) for name in KNOWN_CATALOGS}),
        detections=lambda wc: expand(
            "results/detections/{run}/{tile}.ecsv", run=wc.run, tile=DETECT_TILES
        ),
        sources=planck_catalog_file("sources"),
    output:
        fits="results/candidates/{run}.fits",
        csv="results/candidates/{run}.csv",
    log:
        "logs/crossmatch/{run}.log",
    benchmark:
        "benchmarks/rules/crossmatch/{run}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        crossmatch=XMATCH_CFG,
        catalogs=KNOWN_CATALOGS,
    script:
        "../scripts/crossmatch.py"


rule evaluate:
    input:
        unpack(lambda wc: {name: planck_catalog_file(name) for name in KNOWN_CATALOGS}),
        unpack(
            lambda wc: (
                {"truth": "results/sky/truth_clusters.ecsv"} if SIMULATED_SKY else {}
            )
        ),
        candidates="results/candidates/{run}.fits",
    output:
        summary="results/evaluation/{run}/summary.json",
        curves="results/evaluation/{run}/completeness.csv",
        matched="results/evaluation/{run}/truth_matched.ecsv",
        completeness=report(
            "results/evaluation/{run}/completeness.png",
            caption="report/completeness.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
        sky_map=report(
            "results/evaluation/{run}/sky_map.png",
            caption="report/detection_sky_map.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
    log:
        "logs/evaluate/{run}.log",
    benchmark:
        "benchmarks/rules/evaluate/{run}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        tiles=DETECT_TILES,
        catalogs=KNOWN_CATALOGS,
        evaluate=EVAL_CFG,
        cluster_radius_arcmin=XMATCH_CFG["cluster_radius_arcmin"],
    script:
        "../scripts/evaluate.py"


rule plot_detection_patches:
    input:
        cover=f"results/patches/cover/{DETECT_TILES[0]}.h5",
        prediction=f"results/predictions/{{run}}/{DETECT_TILES[0]}.h5",
        candidates="results/candidates/{run}.fits",
        normalisation="results/datasets/normalisation.json",
    output:
        figure=report(
            "results/evaluation/{run}/patches.png",
            caption="report/detection_patches.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
    log:
        "logs/plot_detection_patches/{run}.log",
    benchmark:
        "benchmarks/rules/plot_detection_patches/{run}.tsv"
    wildcard_constraints:
        run=r"(?!mmf$)[A-Za-z0-9_\-]+",
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        n_panels=EVAL_CFG["n_patch_panels"],
        tile=DETECT_TILES[0],
    script:
        "../scripts/plot_detection_patches.py"


rule compare_detectors:
    input:
        summaries=expand("results/evaluation/{run}/summary.json", run=CLUSTER_RUNS),
        curves=expand("results/evaluation/{run}/completeness.csv", run=CLUSTER_RUNS),
    output:
        table=report(
            "results/evaluation/comparison.csv",
            caption="report/comparison_table.rst",
            category="Cluster detection",
            subcategory="U-Net vs MMF",
        ),
        figure=report(
            "results/evaluation/comparison.png",
            caption="report/comparison.rst",
            category="Cluster detection",
            subcategory="U-Net vs MMF",
        ),
    log:
        "logs/compare_detectors/compare.log",
    benchmark:
        "benchmarks/rules/compare_detectors/compare.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        runs=CLUSTER_RUNS,
    script:
        "../scripts/compare_detectors.py"


if "clusters" in config["detectors"]:
    FINAL_OUTPUT += expand(
        [
            "results/candidates/{run}.fits",
            "results/candidates/{run}.csv",
            "results/evaluation/{run}/summary.json",
            "results/evaluation/{run}/completeness.png",
            "results/evaluation/{run}/sky_map.png",
        ],
        run=CLUSTER_RUNS,
    )
    FINAL_OUTPUT += [
        f"results/evaluation/{UNET_RUN}/patches.png",
        "results/evaluation/comparison.csv",
        "results/evaluation/comparison.png",
    ]
