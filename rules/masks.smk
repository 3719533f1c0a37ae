# Galactic and point-source masks (planck.masks; skydetect.sky.survey_masks): the mock sky
# writes its own from its dust-dominated band and its source catalogue, a real sky takes
# the published Planck HFI masks (downloaded, or planck.local.masks). Paths (MASK_PATHS) and
# inputs (mask_inputs): rules/common.smk. Candidates in the masks are flagged or dropped
# (clusters.mask_candidates) by the catalogue builder.


rule make_masks:
    input:
        unpack(mask_inputs),
    output:
        galactic=MASK_PATHS.galactic,
        point_sources=MASK_PATHS.point_sources,
    log:
        "logs/make_masks/all.log",
    benchmark:
        "benchmarks/rules/make_masks/all.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        # the published masks are NSIDE 2048 (50 M pixels per column)
        mem_mb=500 if SIMULATED_SKY else 3000,
        runtime=10,
    params:
        simulated=SIMULATED_SKY,
        masks=MASKS_CFG,
    script:
        "../scripts/make_masks.py"
