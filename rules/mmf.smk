# Matched multi-frequency filter: the classical baseline beside the U-Net. Run name `mmf`:
# its detections use the U-Net's file contract (docs/dataflow.md), so the crossmatch /
# evaluate / compare_detectors rules treat it as one more run. It runs on DETECT_TILES.
# Settings (MMF_CFG) and paths (MMF_PATHS): rules/common.smk.


rule mmf_tile:
    input:
        tile=TILE_PATHS.tile,
    output:
        detections=MMF_PATHS.detections,
        snr=MMF_PATHS.snr,
    log:
        "logs/mmf_tile/{tile}.log",
    benchmark:
        "benchmarks/rules/mmf_tile/{tile}.tsv"
    conda:
        ENV_SKY
    threads: MMF_CFG["threads"]
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        mmf=computing_params(MMF_CFG),
        bands=BANDS,
    script:
        "../scripts/mmf_tile.py"


rule plot_mmf_tile:
    input:
        unpack(truth_input),
        snr=MMF_PATHS.snr,
        detections=MMF_PATHS.detections,
    output:
        figure=report(
            MMF_PATHS.snr_figure,
            caption="report/mmf_snr_map.rst",
            category="Cluster detection",
            subcategory="mmf",
        ),
    log:
        "logs/plot_mmf_tile/{tile}.log",
    benchmark:
        "benchmarks/rules/plot_mmf_tile/{tile}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        snr_threshold=MMF_CFG["snr_threshold"],
    script:
        "../scripts/plot_mmf_tile.py"
