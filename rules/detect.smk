# Cluster detection: per-tile inference, detections, cross-match with known clusters and
# IR sources, completeness / purity against the truth, U-Net vs MMF. `{run}` is a U-Net run
# name (clusters.train) or `mmf` (rules/mmf.smk writes its detections, DETECT_PATHS with run
# mmf); crossmatch / evaluate serve both, the U-Net rules take only UNET_RUNS. Paths
# (DETECT_PATHS), run lists, scorecard settings and parameter functions: rules/common.smk.


rule predict_tile:
    input:
        cover=DATASET_PATHS.cover,
        normalisation=DATASET_PATHS.normalisation,
        model=TRAIN_PATHS.model,
        weights=TRAIN_PATHS.weights,
    output:
        prediction=DETECT_PATHS.prediction,
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
        prediction=DETECT_PATHS.prediction,
    output:
        detections=DETECT_PATHS.detections,
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
        fits=DETECT_PATHS.candidates,
        csv=report(
            DETECT_PATHS.candidates_csv,
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
        candidates=DETECT_PATHS.candidates,
    output:
        summary=report(
            DETECT_PATHS.summary,
            caption="report/evaluation_summary.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
        curves=report(
            DETECT_PATHS.completeness,
            caption="report/completeness_table.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
        matched=DETECT_PATHS.truth_matched,
        completeness=report(
            DETECT_PATHS.completeness_figure,
            caption="report/completeness.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
        sky_map=report(
            DETECT_PATHS.sky_map,
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
        cover=fill(DATASET_PATHS.cover, tile=DETECT_TILES[0]),
        prediction=fill(DETECT_PATHS.prediction, tile=DETECT_TILES[0]),
        candidates=DETECT_PATHS.candidates,
        normalisation=DATASET_PATHS.normalisation,
    output:
        figure=report(
            DETECT_PATHS.patches_figure,
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
        summaries=expand(DETECT_PATHS.summary, run=CLUSTER_RUNS),
        curves=expand(DETECT_PATHS.completeness, run=CLUSTER_RUNS),
    output:
        table=report(
            DETECT_PATHS.comparison,
            caption="report/comparison_table.rst",
            category="Cluster detection",
            subcategory="U-Net vs MMF",
        ),
        figure=report(
            DETECT_PATHS.comparison_figure,
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


rule combine_candidates:
    input:
        unet=fill(DETECT_PATHS.candidates, run=COMBINE_RUN),
        mmf=fill(DETECT_PATHS.candidates, run="mmf"),
    output:
        fits=fill(DETECT_PATHS.candidates, run="combined"),
        csv=fill(DETECT_PATHS.candidates_csv, run="combined"),
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
        candidates=expand(DETECT_PATHS.candidates, run=SCORECARD_DETECTORS),
        truth=SKY_PATHS.truth,
        thresholds=VALIDATION_PATHS.thresholds,
    output:
        table=report(
            DETECT_PATHS.scorecard,
            caption="report/scorecard.rst",
            category="Cluster detection",
            subcategory="scorecard",
        ),
        curves=DETECT_PATHS.purity_completeness,
        figure=report(
            DETECT_PATHS.purity_completeness_figure,
            caption="report/purity_completeness.rst",
            category="Cluster detection",
            subcategory="scorecard",
        ),
        markdown=DETECT_PATHS.scorecard_markdown,
        mass_z=report(
            DETECT_PATHS.completeness_mass_z,
            caption="report/completeness_mass_z.rst",
            category="Cluster detection",
            subcategory="scorecard",
        ),
        matched=expand(DETECT_PATHS.matched_candidates, run=SCORECARD_DETECTORS),
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
