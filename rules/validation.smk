# Held-out operating points: the detectors also run on the validation tiles (the per-tile
# rules cut_cover, predict_tile, extract_detections and mmf_tile are the test tiles' own,
# their outputs named by tile), their candidate catalogues go to results/validation/, and
# every scorecard threshold is fixed there (rule choose_thresholds) before the test tiles
# are scored once at it (rule scorecard).


use rule crossmatch as crossmatch_validation with:
    input:
        unpack(known_catalogs),
        detections=validation_detections,
        sources=source_catalogs,
    output:
        fits="results/validation/candidates/{run}.fits",
        csv="results/validation/candidates/{run}.csv",
    log:
        "logs/crossmatch_validation/{run}.log",
    benchmark:
        "benchmarks/rules/crossmatch_validation/{run}.tsv"


use rule combine_candidates as combine_candidates_validation with:
    input:
        unet=f"results/validation/candidates/{COMBINE_RUN}.fits",
        mmf="results/validation/candidates/mmf.fits",
    output:
        fits="results/validation/candidates/combined.fits",
        csv="results/validation/candidates/combined.csv",
    log:
        "logs/combine_candidates_validation/combined.log",
    benchmark:
        "benchmarks/rules/combine_candidates_validation/combined.tsv"


rule choose_thresholds:
    input:
        candidates=expand(
            "results/validation/candidates/{run}.fits", run=SCORECARD_DETECTORS
        ),
        truth=TRUTH,
    output:
        thresholds=THRESHOLDS,
        matched=expand(
            "results/validation/evaluation/{run}/matched_candidates.ecsv",
            run=SCORECARD_DETECTORS,
        ),
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
