# Calibrated P(real) of the cluster candidates (skydetect.clusters.calibration): fitted per
# detector on the validation candidates matched to the truth, scored on the test candidates.
# The matched candidate tables (results/{validation/,}evaluation/{detector}/
# matched_candidates.ecsv: the candidate columns plus IS_TRUE and TRUTH_ID) come from the
# evaluation rules.
CALIBRATION_DETECTORS = SCORECARD_DETECTORS


rule calibrate:
    input:
        candidates="results/validation/evaluation/{detector}/matched_candidates.ecsv",
    output:
        calibration="results/models/calibration/{detector}.json",
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
        calibrations=expand(
            "results/models/calibration/{detector}.json",
            detector=CALIBRATION_DETECTORS,
        ),
        candidates=expand(
            "results/evaluation/{detector}/matched_candidates.ecsv",
            detector=CALIBRATION_DETECTORS,
        ),
    output:
        table=report(
            "results/evaluation/calibration.ecsv",
            caption="report/calibration.rst",
            category="Cluster detection",
            subcategory="calibration",
        ),
        figure=report(
            "results/evaluation/reliability.png",
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
    script:
        "../scripts/evaluate_calibration.py"


if "clusters" in config["detectors"] and SIMULATED_SKY:
    FINAL_OUTPUT += [
        "results/evaluation/calibration.ecsv",
        "results/evaluation/reliability.png",
    ]
