# Calibrated P(real) of the cluster candidates (skydetect.clusters.calibration): fitted per
# detector on the validation candidates matched to the truth, scored on the test candidates.
# The matched candidate tables (VALIDATION_PATHS / DETECT_PATHS.matched_candidates: the
# candidate columns plus IS_TRUE and TRUTH_ID) come from the evaluation rules. Paths
# (CALIBRATION_PATHS): rules/common.smk.
CALIBRATION_DETECTORS = SCORECARD_DETECTORS


rule calibrate:
    input:
        candidates=fill(VALIDATION_PATHS.matched_candidates, run="{detector}"),
    output:
        calibration=CALIBRATION_PATHS.model,
    log:
        "logs/calibrate/{detector}.log",
    benchmark:
        "benchmarks/rules/calibrate/{detector}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/calibrate.py"


rule evaluate_calibration:
    input:
        calibrations=expand(CALIBRATION_PATHS.model, detector=CALIBRATION_DETECTORS),
        candidates=expand(DETECT_PATHS.matched_candidates, run=CALIBRATION_DETECTORS),
    output:
        table=report(
            CALIBRATION_PATHS.table,
            caption="report/calibration.rst",
            category="Cluster detection",
            subcategory="calibration",
        ),
        figure=report(
            CALIBRATION_PATHS.reliability,
            caption="report/reliability.rst",
            category="Cluster detection",
            subcategory="calibration",
        ),
    log:
        "logs/evaluate_calibration/all.log",
    benchmark:
        "benchmarks/rules/evaluate_calibration/all.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        detectors=CALIBRATION_DETECTORS,
        n_bins=CL["calibration"]["n_bins"],
        n_bootstrap=CL["evaluate"]["n_bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/evaluate_calibration.py"
