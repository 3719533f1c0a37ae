# Held-out operating points: the detectors also run on the validation tiles (the per-tile
# rules cut_cover, predict_tile, extract_detections and mmf_tile are the test tiles' own,
# their outputs named by tile), their candidate catalogues go to VALIDATION_PATHS
# (rules/common.smk), and every scorecard threshold is fixed there (rule choose_thresholds)
# before the test tiles are scored once at it (rule scorecard).


use rule crossmatch as crossmatch_validation with:
    input:
        unpack(known_catalogs),
        detections=validation_detections,
        sources=source_catalogs,
    output:
        fits=VALIDATION_PATHS.candidates,
        csv=VALIDATION_PATHS.candidates_csv,
    log:
        "logs/crossmatch_validation/{run}.log",
    benchmark:
        "benchmarks/rules/crossmatch_validation/{run}.tsv"


use rule combine_candidates as combine_candidates_validation with:
    input:
        unet=fill(VALIDATION_PATHS.candidates, run=COMBINE_RUN),
        mmf=fill(VALIDATION_PATHS.candidates, run="mmf"),
    output:
        fits=fill(VALIDATION_PATHS.candidates, run="combined"),
        csv=fill(VALIDATION_PATHS.candidates_csv, run="combined"),
    log:
        "logs/combine_candidates_validation/combined.log",
    benchmark:
        "benchmarks/rules/combine_candidates_validation/combined.tsv"


rule choose_thresholds:
    input:
        candidates=expand(VALIDATION_PATHS.candidates, run=SCORECARD_DETECTORS),
        truth=SKY_PATHS.truth,
    output:
        thresholds=VALIDATION_PATHS.thresholds,
        matched=expand(VALIDATION_PATHS.matched_candidates, run=SCORECARD_DETECTORS),
    log:
        "logs/choose_thresholds/choose.log",
    benchmark:
        "benchmarks/rules/choose_thresholds/choose.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        detectors=SCORECARD_DETECTORS,
        tiles=VALIDATION_TILES,
        evaluate=scorecard_params(),
        combine_run=COMBINE_RUN,
    script:
        "../scripts/choose_thresholds.py"
