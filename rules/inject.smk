# Selection function by injection: synthetic clusters (Y5R500 x theta500 grid) added to the
# test tiles' maps of any source (mock, local or downloaded), both detectors run again on
# them, and the completeness per cell counted at the fixed thresholds of the validation tiles
# (skydetect.clusters.inject / inject_run / selfunc). Settings (INJECT_CFG, INJECT_DETECTORS,
# ...), paths (INJECT_PATHS) and input functions: rules/common.smk.
rule inject_tile:
    input:
        unpack(inject_mask),
        tile=TILE_PATHS.tile,
        cover=DATASET_PATHS.cover,
        normalisation=DATASET_PATHS.normalisation,
        models=expand(TRAIN_PATHS.model, run=UNET_RUNS),
        weights=expand(TRAIN_PATHS.weights, run=UNET_RUNS),
        detections=expand(DETECT_PATHS.detections, run=CLUSTER_RUNS, allow_missing=True),
    output:
        injections=INJECT_PATHS.injections,
    log:
        "logs/inject_tile/{tile}.log",
    benchmark:
        "benchmarks/rules/inject_tile/{tile}.tsv"
    conda:
        ENV_ML
    threads: DETECT_CFG["threads"]
    resources:
        # the tile file, the cover patches twice (raw + injected signal) and one network
        mem_mb=INJECT_CFG["mem_mb"],
        runtime=60,
    params:
        inject=computing_params(INJECT_CFG),
        seed=config["seed"],
        simulate=config["planck"]["simulate"],
        bands=BANDS,
        unet_runs=UNET_RUNS,
        run_bands=INJECT_RUN_BANDS,
        detect=computing_params(DETECT_CFG),
        mmf={**computing_params(MMF_CFG), "enabled": "mmf" in CLUSTER_RUNS},
        match_radius=[
            EVAL_CFG["theta500_scale"],
            EVAL_CFG["min_radius_arcmin"],
            EVAL_CFG["max_radius_arcmin"],
        ],
    script:
        "../scripts/inject_tile.py"


rule selection_function:
    input:
        injections=expand(INJECT_PATHS.injections, tile=DETECT_TILES),
        thresholds=INJECT_THRESHOLDS or VALIDATION_PATHS.thresholds,
    output:
        fits=INJECT_PATHS.selection_function,
        figure=report(
            INJECT_PATHS.selection_function_figure,
            caption="report/selection_function.rst",
            category="Cluster detection",
            subcategory="selection function",
        ),
    log:
        "logs/selection_function/all.log",
    benchmark:
        "benchmarks/rules/selection_function/all.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        inject=computing_params(INJECT_CFG),
        detectors=INJECT_DETECTORS,
        combined_parts=[COMBINE_RUN, "mmf"],
        seed=config["seed"],
    script:
        "../scripts/selection_function.py"


rule selection_function_vs_truth:
    input:
        injections=expand(INJECT_PATHS.injections, tile=DETECT_TILES),
        matched=expand(DETECT_PATHS.truth_matched, run=CLUSTER_RUNS),
    output:
        table=report(
            INJECT_PATHS.vs_truth,
            caption="report/selection_function_vs_truth.rst",
            category="Cluster detection",
            subcategory="selection function",
        ),
    log:
        "logs/selection_function_vs_truth/all.log",
    benchmark:
        "benchmarks/rules/selection_function_vs_truth/all.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        inject=computing_params(INJECT_CFG),
        runs=CLUSTER_RUNS,
        operating_points=INJECT_OPERATING_POINTS,
    script:
        "../scripts/selection_function_vs_truth.py"
