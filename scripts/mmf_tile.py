"""Rule mmf_tile: matched multi-frequency filter over one tile (S/N maps + detections)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.clusters import mmf  # noqa: E402
from skydetect.geometry.tiles import read_tile  # noqa: E402

cfg = mmf.MMFConfig.from_config(dict(snakemake.params.mmf), snakemake.params.bands)
tile = read_tile(snakemake.input.tile, bands=cfg.bands)
if tile.tile != int(snakemake.wildcards.tile):
    raise mmf.MMFError(
        f"{snakemake.input.tile} holds tile {tile.tile}, not {snakemake.wildcards.tile}"
    )
log.info(
    "tile %d: nside %d, %d pixels (margin %.2f deg), bands %s",
    tile.tile,
    tile.nside,
    len(tile.pixels),
    tile.margin_deg,
    cfg.bands,
)
res = mmf.run_tile(tile, cfg, progress=True, workers=snakemake.threads)
if res.invalid_fraction > 0:
    log.warning(
        "%.2f %% of patch pixels lie outside the tile file (margin %.2f deg) or are invalid: "
        "they are masked; widen the tile margin for clean filtering near the tile edges",
        100 * res.invalid_fraction,
        tile.margin_deg,
    )
log.info(
    "%d patches (centres on nside %d), %d detections at S/N >= %.1f",
    len(res.centres),
    res.nside_centres,
    len(res.detections),
    cfg.snr_threshold,
)
meta = {
    "detector": "mmf",
    "tile": tile.tile,
    "nside": tile.nside,
    "bands": cfg.bands,
    "snr_threshold": cfg.snr_threshold,
    "theta500_bins_arcmin": [float(t) for t in cfg.theta500_arcmin],
    "profile": cfg.profile,
    "note": "PEAK_PROB and MEAN_PROB are NaN for the MMF; rank by SNR",
}
mmf.write_snr_map(
    snakemake.output.snr,
    res,
    tile.nside,
    tile.tile,
    attrs={"bands": cfg.bands, "snr_threshold": cfg.snr_threshold, "profile": cfg.profile},
)
mmf.write_detections(snakemake.output.detections, res.detections, meta)
