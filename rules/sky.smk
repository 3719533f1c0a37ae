# The Planck sky: the mock sky (simulate mode) and the map check of every band. Paths
# (SKY_PATHS, mock_map) and input functions (raw_map, planck_catalog_file) are in
# rules/common.smk.


rule simulate_planck_sky:
    output:
        maps=[mock_map(band) for band in BANDS],
        truth=SKY_PATHS.truth,
        psz2=SKY_PATHS.mock_catalogs["psz2"],
        mcxc=SKY_PATHS.mock_catalogs["mcxc"],
        redmapper=SKY_PATHS.mock_catalogs["redmapper"],
        sources=SKY_PATHS.mock_catalogs["sources"],
        summary=SKY_PATHS.summary,
    log:
        "logs/simulate_planck_sky/all.log",
    benchmark:
        "benchmarks/rules/simulate_planck_sky/all.tsv"
    # started first, on both cores (97 s on two AMD EPYC cores under AVX2; on one, beside the
    # bubble side's preparation, 166 s)
    priority: PRIORITY.mock_sky
    conda:
        ENV_SKY
    threads: 2
    resources:
        # components, six beamed channel alms and the ILC's six 10' alms
        mem_mb=int(1500 + 2500 * (PLANCK["nside"] / 1024) ** 2),
        runtime=int(10 + 10 * (PLANCK["nside"] / 1024) ** 2),
    params:
        nside=PLANCK["nside"],
        bands=BANDS,
        seed=config["seed"],
        simulate=PLANCK["simulate"],
    script:
        "../scripts/simulate_planck_sky.py"


rule check_map:
    input:
        map=raw_map,
    output:
        map=SKY_PATHS.checked_map,
        report=SKY_PATHS.checked_report,
    log:
        "logs/check_map/{band}.log",
    benchmark:
        "benchmarks/rules/check_map/{band}.tsv"
    priority: PRIORITY.cluster_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=int(500 + 300 * (MAP_NSIDE / 1024) ** 2),
        runtime=int(5 + 2 * (MAP_NSIDE / 1024) ** 2),
    params:
        max_bad_fraction=PLANCK["check"]["max_bad_fraction"],
        nside=PLANCK["nside"],
        source=PLANCK["source"],
        lock=DOWNLOAD_LOCK,
    script:
        "../scripts/check_map.py"
