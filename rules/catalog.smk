# Published cluster catalogues: every candidate of a detector (U-Net run, `mmf`, `combined`)
# measured by the MMF at its position (forced photometry, per tile), matched with the known
# clusters (PSZ2, MCXC, redMaPPer) for names and redshifts, and flagged near bright IR sources.
# Library: skydetect.clusters.cluster_catalog, .ir_flag, .mmf.photometry.
CATALOG_CFG = CL["cluster_catalog"]


rule forced_photometry:
    input:
        tile="results/tiles/{tile}.h5",
        candidates="results/candidates/{run}.fits",
    output:
        photometry="results/photometry/{run}/{tile}.ecsv",
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
        mmf=MMF_CFG,
        bands=BANDS,
    script:
        "../scripts/forced_photometry.py"


rule ir_flag_chance:
    input:
        sources=source_catalogs,
    output:
        chance="results/catalogs/ir_flag_chance.json",
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
        candidates="results/candidates/{run}.fits",
        photometry=expand("results/photometry/{{run}}/{tile}.ecsv", tile=DETECT_TILES),
        sources=source_catalogs,
        chance="results/catalogs/ir_flag_chance.json",
        galactic_mask=SURVEY_MASKS["galactic"],
        point_source_mask=SURVEY_MASKS["point_sources"],
    output:
        fits="results/catalogs/{run}.fits",
        csv=report(
            "results/catalogs/{run}.csv",
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


if "clusters" in config["detectors"] and CATALOG_CFG["enabled"]:
    FINAL_OUTPUT += expand(
        ["results/catalogs/{run}.fits", "results/catalogs/{run}.csv"], run=CATALOG_RUNS
    )
    FINAL_OUTPUT += ["results/catalogs/ir_flag_chance.json"]
