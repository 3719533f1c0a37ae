# The Planck sky (issue 2): the mock sky (simulate mode) and the map check of every band.
#
# Input functions for later stages (from skydetect.sky.paths.SkyPaths):
#   checked_map(band)          -> "results/sky/checked/{band}.fits" (RING, float32, GALACTIC)
#   planck_catalog_file(name)  -> the psz2 / mcxc / redmapper / sources file of the source in
#                                 use: the mock's, results/download/<file>, or a local path.
from skydetect.sky.paths import MOCK_CATALOGS, TRUTH, SkyPaths

PLANCK = config["planck"]
SKY_PATHS = SkyPaths(PLANCK, downloaded_map, downloaded_catalog)
checked_map = SKY_PATHS.checked_map
planck_catalog_file = SKY_PATHS.catalog
MAP_NSIDE = SKY_PATHS.map_nside


rule simulate_planck_sky:
    output:
        maps=[SKY_PATHS.mock_map(band) for band in BANDS],
        truth=TRUTH,
        psz2=MOCK_CATALOGS["psz2"],
        mcxc=MOCK_CATALOGS["mcxc"],
        redmapper=MOCK_CATALOGS["redmapper"],
        sources=MOCK_CATALOGS["sources"],
    log:
        "logs/simulate_planck_sky/all.log",
    benchmark:
        "benchmarks/rules/simulate_planck_sky/all.tsv"
    conda:
        ENV_SKY
    threads: 2
    resources:
        mem_mb=int(1500 + 1200 * (PLANCK["nside"] / 1024) ** 2),
        runtime=int(10 + 5 * (PLANCK["nside"] / 1024) ** 2),
    params:
        nside=PLANCK["nside"],
        bands=BANDS,
        seed=config["seed"],
        simulate=PLANCK["simulate"],
    script:
        "../scripts/simulate_planck_sky.py"


rule check_map:
    input:
        map=lambda wc: SKY_PATHS.raw_map(wc.band),
    output:
        map="results/sky/checked/{band}.fits",
        report="results/sky/checked/{band}.json",
    log:
        "logs/check_map/{band}.log",
    benchmark:
        "benchmarks/rules/check_map/{band}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=int(500 + 300 * (MAP_NSIDE / 1024) ** 2),
        runtime=int(5 + 2 * (MAP_NSIDE / 1024) ** 2),
    params:
        nside=PLANCK["nside"] if PLANCK["source"] == "simulate" else None,
        max_bad_fraction=PLANCK["check"]["max_bad_fraction"],
    script:
        "../scripts/check_map.py"


if "clusters" in config["detectors"]:
    FINAL_OUTPUT += [checked_map(band) for band in BANDS]
    FINAL_OUTPUT += [SKY_PATHS.checked_report(band) for band in BANDS]
