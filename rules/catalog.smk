# Published cluster catalogues: every candidate of a detector (U-Net run, `mmf`, `combined`)
# measured by the MMF at its position (forced photometry, per tile), matched with the known
# clusters (PSZ2, MCXC, redMaPPer) for names and redshifts, and flagged near bright IR sources.
# Library: skydetect.clusters.cluster_catalog, .ir_flag, .mmf.photometry. Settings
# (CATALOG_CFG) and paths (CATALOG_PATHS): rules/common.smk.


rule forced_photometry:
    input:
        tile=TILE_PATHS.tile,
        candidates=DETECT_PATHS.candidates,
    output:
        photometry=CATALOG_PATHS.photometry,
    log:
        "logs/forced_photometry/{run}_{tile}.log",
    benchmark:
        "benchmarks/rules/forced_photometry/{run}_{tile}.tsv"
    wildcard_constraints:
        run=one_of(CATALOG_RUNS),
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        mmf=computing_params(MMF_CFG),
        bands=BANDS,
    script:
        "../scripts/forced_photometry.py"


rule ir_flag_chance:
    input:
        sources=source_catalogs,
    output:
        chance=CATALOG_PATHS.ir_flag_chance,
    log:
        "logs/ir_flag_chance/chance.log",
    benchmark:
        "benchmarks/rules/ir_flag_chance/chance.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        catalog=CATALOG_CFG,
        tiles=DETECT_TILES,
        radius_arcmin=XMATCH_CFG["source_radius_arcmin"],
        sources_format=config["planck"]["sources_format"],
        seed=config["seed"],
    script:
        "../scripts/ir_flag_chance.py"


rule cluster_catalog:
    input:
        unpack(catalog_known_files),
        unpack(catalog_calibration),
        candidates=DETECT_PATHS.candidates,
        photometry=expand(
            CATALOG_PATHS.photometry, tile=DETECT_TILES, allow_missing=True
        ),
        sources=source_catalogs,
        chance=CATALOG_PATHS.ir_flag_chance,
        galactic_mask=MASK_PATHS.galactic,
        point_source_mask=MASK_PATHS.point_sources,
    output:
        fits=CATALOG_PATHS.fits,
        csv=report(
            CATALOG_PATHS.csv,
            caption="report/cluster_catalog.rst",
            category="Cluster detection",
            subcategory="{run}",
        ),
    log:
        "logs/cluster_catalog/{run}.log",
    benchmark:
        "benchmarks/rules/cluster_catalog/{run}.tsv"
    wildcard_constraints:
        run=one_of(CATALOG_RUNS),
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        catalog=CATALOG_CFG,
        known=CATALOG_KNOWN,
        cluster_radius_arcmin=XMATCH_CFG["cluster_radius_arcmin"],
        source_radius_arcmin=XMATCH_CFG["source_radius_arcmin"],
        sources_format=config["planck"]["sources_format"],
        mask_policy=config["clusters"]["mask_candidates"],
    script:
        "../scripts/cluster_catalog.py"
