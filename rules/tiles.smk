# HEALPix nside-2 tiles: each full-sky checked map is read once and cut into the
# 48 RING tiles, each with a margin wide enough for every patch that touches the tile (cluster
# patches with their shifts and cover grid, and the MMF's flat patches). Later per-tile jobs
# read only their tile's file (TILE_PATHS.tile, rules/common.smk).
from skydetect.geometry.tiles import patch_reach_deg, required_margin_deg

TILES = list(range(N_TILES))
TILE_MARGIN_DEG = round(
    max(
        required_margin_deg(
            config["clusters"]["patch"]["size"],
            config["clusters"]["patch"]["pixel_arcmin"],
            config["clusters"]["patch"]["max_shift"],
            config["planck"]["nside"],
        ),
        patch_reach_deg(
            config["clusters"]["mmf"].get("patch_size", 0),
            config["clusters"]["mmf"].get("pixel_arcmin", 0.0),
            0.0,
            config["planck"]["nside"],
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
