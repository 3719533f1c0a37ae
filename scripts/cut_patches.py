"""Rules cut_patches / cut_cover: the patches of one tile (training, validation or cover)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters import catalogs, cover, patches  # noqa: E402
from skydetect.clusters.patch_files import write_patches  # noqa: E402
from skydetect.clusters.predict import prediction_nside  # noqa: E402
from skydetect.geometry import tiles  # noqa: E402

split = snakemake.params.split
tile_id = int(snakemake.wildcards.tile)
cfg = patches.PatchConfig.from_config(
    snakemake.params.bands, snakemake.params.patch, snakemake.params.mask
)
tile = tiles.read_tile(snakemake.input.tile, bands=cfg.bands)
if tile.tile != tile_id:
    raise tiles.TileError(f"{snakemake.input.tile} holds tile {tile.tile}, not {tile_id}")
cat = catalogs.read_training_catalog(snakemake.input.catalog)
extra = None
if split == "cover":
    attrs, chunks = patches.cover_chunks(tile, cat, cfg, snakemake.params.seed, progress=True)
    # the patch-to-HEALPix index of the prediction map, built once here for predict_tile
    nside = prediction_nside(cfg.pixel_arcmin, snakemake.params.prediction_nside)
    index = patches.cover_index(tile, cfg, nside)
    log.info("cover redundancy %.2f; combination index at nside %d: %d entries",
             attrs["cover_redundancy"], nside, index.map_index.size)  # fmt: skip

    def extra(f):
        cover.write_index(f, index)

else:
    attrs, chunks = patches.training_chunks(
        tile, cat, cfg, split, snakemake.params.split_tiles, snakemake.params.seed, progress=True
    )
attrs.update(catalog=str(snakemake.input.catalog), seed=snakemake.params.seed)
n = write_patches(snakemake.output[0], chunks, cfg, attrs, extra)  # streamed
log.info("tile %d (%s): %d patches kept of %d candidates", tile_id, split, n, attrs["n_candidates"])
