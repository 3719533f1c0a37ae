"""Rule forced_photometry: the MMF measures every candidate of a detector in one tile."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

from skydetect.clusters import mmf  # noqa: E402
from skydetect.clusters.detect import write_table_atomic  # noqa: E402
from skydetect.clusters.mmf.photometry import tile_photometry  # noqa: E402
from skydetect.geometry.tiles import read_tile  # noqa: E402

cfg = mmf.MMFConfig.from_config(dict(snakemake.params.mmf), snakemake.params.bands)
tile = read_tile(snakemake.input.tile, bands=cfg.bands)
if tile.tile != int(snakemake.wildcards.tile):
    raise mmf.MMFError(
        f"{snakemake.input.tile} holds tile {tile.tile}, not {snakemake.wildcards.tile}"
    )
candidates = Table.read(snakemake.input.candidates, format="fits")
table = tile_photometry(candidates, tile, cfg, workers=snakemake.threads)
table.meta.update({"RUN": snakemake.wildcards.run, "TILE": tile.tile, "BANDS": ",".join(cfg.bands)})
n_bad = int(np.isnan(table["SNR"]).sum())
if n_bad:
    log.warning("%d candidate(s) not measured: their patch lies mostly outside the tile file", n_bad)
log.info("run %s, tile %d: %d of %d candidates measured (median S/N %.2f)",
         snakemake.wildcards.run, tile.tile, len(table) - n_bad, len(table),
         float(np.nanmedian(table["SNR"])) if len(table) > n_bad else float("nan"))  # fmt: skip
write_table_atomic(table, snakemake.output.photometry)
