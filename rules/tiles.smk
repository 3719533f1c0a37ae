# HEALPix nside-2 tiles: each full-sky checked map is read once and cut into the
# 48 RING tiles, each with a margin wide enough for every patch that touches the tile (cluster
# patches with their shifts and cover grid, and the MMF's flat patches). Later per-tile jobs
# read only their tile's file (TILE_PATHS.tile, rules/common.smk).
from skydetect.geometry.tiles import cluster_margin_deg, mmf_margin_deg

TILES = list(range(N_TILES))
TILE_MARGIN_DEG = round(
    max(
        cluster_margin_deg(
            CL["patch"]["size"],
            CL["patch"]["pixel_arcmin"],
            CL["patch"]["max_shift"],
            PLANCK["nside"],
        ),
        mmf_margin_deg(
            CL["mmf"]["patch_size"], CL["mmf"]["pixel_arcmin"], PLANCK["nside"]
        ),
    ),
    3,
)


rule split_tiles:
    input:
        maps=expand(SKY_PATHS.checked_map, band=BANDS),
    output:
        tiles=expand(TILE_PATHS.tile, tile=TILES),
    log:
        "logs/split_tiles/all.log",
    benchmark:
        "benchmarks/rules/split_tiles/all.tsv"
    priority: PRIORITY.cluster_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        # one full-sky float32 map and its RING index arrays, plus one tile at a time
        mem_mb=max(1000, 1000 + 12 * MAP_NSIDE**2 * 24 // 10**6),
        runtime=max(10, 12 * MAP_NSIDE**2 * len(BANDS) // 10**7),
    params:
        bands=BANDS,
        tiles=TILES,
        margin_deg=TILE_MARGIN_DEG,
    script:
        "../scripts/split_tiles.py"
