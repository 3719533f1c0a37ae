# Cluster detection: per-tile inference, detections, cross-match with known clusters and
# IR sources, completeness / purity against the truth, U-Net vs MMF. `{run}` is a U-Net run
# name (clusters.train) or `mmf` (rules/mmf.smk writes results/detections/mmf/{tile}.ecsv);
# crossmatch / evaluate serve both, the U-Net rules take only UNET_RUNS (rules/common.smk).
# Run lists, scorecard settings and parameter functions: rules/common.smk.


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
        run=one_of(UNET_RUNS),
    conda:
        ENV_ML
    threads: DETECT_CFG["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        batch_size=DETECT_CFG["batch_size"],
        nside=DETECT_CFG["nside"],
        precision=DETECT_CFG["precision"],
        streams=DETECT_CFG["streams"],
        bands=unet_run_bands,
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
        run=one_of(UNET_RUNS),
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        detect=computing_params(DETECT_CFG),
    script:
        "../scripts/extract_detections.py"


rule crossmatch:
    input:
        unpack(known_catalogs),
        detections=run_detections,
        sources=source_catalogs,
    output:
        fits="results/candidates/{run}.fits",
        csv=report(
            "results/candidates/{run}.csv",
            caption="report/candidates_table.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
    log:
        "logs/crossmatch/{run}.log",
    benchmark:
        "benchmarks/rules/crossmatch/{run}.tsv"
    wildcard_constraints:
        run=one_of(UNET_RUNS + ["mmf"]),
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        crossmatch=XMATCH_CFG,
        catalogs=KNOWN_CATALOGS,
        sources_format=config["planck"]["sources_format"],
    script:
        "../scripts/crossmatch.py"


rule evaluate:
    input:
        unpack(known_catalogs),
        unpack(truth_input),
        candidates="results/candidates/{run}.fits",
    output:
        summary=report(
            "results/evaluation/{run}/summary.json",
            caption="report/evaluation_summary.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
        curves=report(
            "results/evaluation/{run}/completeness.csv",
            caption="report/completeness_table.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
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
        operating_point=operating_point,
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
        run=one_of(UNET_RUNS),
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
    FINAL_OUTPUT += expand("results/evaluation/{run}/patches.png", run=UNET_RUNS)
    FINAL_OUTPUT += [
        "results/evaluation/comparison.csv",
        "results/evaluation/comparison.png",
    ]


rule combine_candidates:
    input:
        unet=f"results/candidates/{COMBINE_RUN}.fits",
        mmf="results/candidates/mmf.fits",
    output:
        fits="results/candidates/combined.fits",
        csv="results/candidates/combined.csv",
    log:
        "logs/combine_candidates/combined.log",
    benchmark:
        "benchmarks/rules/combine_candidates/combined.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        unet_run=COMBINE_RUN,
        radius_arcmin=EVAL_CFG["combine_radius_arcmin"],
    script:
        "../scripts/combine_candidates.py"


rule scorecard:
    input:
        candidates=expand("results/candidates/{run}.fits", run=SCORECARD_DETECTORS),
        truth=TRUTH,
        thresholds=THRESHOLDS,
    output:
        table=report(
            "results/evaluation/scorecard.ecsv",
            caption="report/scorecard.rst",
            category="Cluster detection",
            subcategory="scorecard",
        ),
        curves="results/evaluation/purity_completeness.ecsv",
        figure=report(
            "results/evaluation/purity_completeness.png",
            caption="report/purity_completeness.rst",
            category="Cluster detection",
            subcategory="scorecard",
        ),
        markdown="results/evaluation/scorecard.md",
        mass_z=report(
            "results/evaluation/completeness_mass_z.png",
            caption="report/completeness_mass_z.rst",
            category="Cluster detection",
            subcategory="scorecard",
        ),
        matched=expand(
            "results/evaluation/{run}/matched_candidates.ecsv", run=SCORECARD_DETECTORS
        ),
    log:
        "logs/scorecard/scorecard.log",
    benchmark:
        "benchmarks/rules/scorecard/scorecard.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        detectors=SCORECARD_DETECTORS,
        tiles=TEST_TILES,
        evaluate=scorecard_params(),
        seed=config["seed"],
        command=SCORECARD_COMMAND,
        mask_policy=config["clusters"]["mask_candidates"],
    script:
        "../scripts/scorecard.py"


if "clusters" in config["detectors"] and SIMULATED_SKY and len(SCORECARD_DETECTORS) > 1:
    FINAL_OUTPUT += [
        "results/evaluation/scorecard.ecsv",
        "results/evaluation/scorecard.md",
        "results/evaluation/purity_completeness.png",
        "results/evaluation/completeness_mass_z.png",
        THRESHOLDS,
    ]
