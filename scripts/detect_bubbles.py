"""Driver of rule detect_bubbles: SSD over a whole aligned tile (skydetect.bubbles.detect)."""

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

from skydetect.bubbles.catalog import bubble_boxes, in_tile, read_catalog  # noqa: E402
from skydetect.bubbles.detect import DetectSettings, detect_tile, detections_table  # noqa: E402
from skydetect.bubbles.preprocess import preprocess_window  # noqa: E402
from skydetect.bubbles.ssd.model import load_model  # noqa: E402
from skydetect.bubbles.train import set_threads  # noqa: E402
from skydetect.bubbles.windows import sizes_to_pixels, sliding_windows  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.plots.bubble_detections import plot_tile_detections  # noqa: E402
from skydetect.sky.spitzer import read_tile  # noqa: E402

sm = snakemake  # noqa: F821
p = sm.params
set_threads(sm.threads)
model, priors, meta = load_model(Path(sm.input.model).parent)
pp = p.preprocess
if int(meta["ssd"]["input_size"]) != int(pp["input_size"]):
    raise ValueError(
        f"{sm.input.model}: model input {meta['ssd']['input_size']} px but "
        f"bubbles.preprocess.input_size is {pp['input_size']}"
    )
tile = read_tile(sm.input.tile)
sizes = sizes_to_pixels(p.windows["sizes_arcmin"], tile.pixel_arcsec, tile.shape)
windows = sliding_windows(tile.shape, sizes, p.windows["stride_fraction"])
log.info("%s: %d windows of %s px", tile.field, len(windows[0]), list(sizes))
settings = DetectSettings.from_config(p.detect)
boxes, scores = detect_tile(
    model, priors, tile.data, windows, partial(preprocess_window, **pp), settings, progress=True
)
keep = scores >= meta["threshold"]
boxes, scores = boxes[keep], scores[keep]
log.info("%d detections at score >= %.2f", len(boxes), meta["threshold"])
table = detections_table(boxes, scores, tile.wcs, tile.pixel_arcsec, tile.field)
table.meta["threshold"] = float(meta["threshold"])
for out, fmt in [(sm.output.ecsv, "ascii.ecsv"), (sm.output.csv, "ascii.csv")]:
    with atomic_path(out) as tmp:
        table.write(tmp, format=fmt, overwrite=True)
catalog = read_catalog(sm.input.catalog)
catalog = catalog[in_tile(catalog, tile.wcs, tile.shape)]
truth = bubble_boxes(catalog, tile.wcs, tile.pixel_arcsec, p.windows["box_scale"])
plot_tile_detections(
    tile.data,
    boxes,
    scores,
    sm.output.figure,
    truth=truth,
    truth_clear=catalog["CLEAR"],
    title=f"{tile.field}: {len(boxes)} detections (score >= {meta['threshold']:.2f})",
)
