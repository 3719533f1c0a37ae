"""Driver of rule detect_bubbles: SSD over a whole aligned field (skydetect.bubbles.detect)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

from pathlib import Path  # noqa: E402

from skydetect.bubbles.catalog import bubble_boxes, in_field, read_catalog  # noqa: E402
from skydetect.bubbles.coverage import apply_poor_cover, coverage_columns  # noqa: E402
from skydetect.bubbles.detect import DetectSettings, detect_field, detections_table  # noqa: E402
from skydetect.bubbles.ssd.model import load_model  # noqa: E402
from skydetect.bubbles.train import set_threads  # noqa: E402
from skydetect.bubbles.windows import sizes_to_pixels, sliding_windows  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.io.spitzer import read_field  # noqa: E402
from skydetect.plots.bubble_detections import plot_field_detections  # noqa: E402

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
field = read_field(sm.input.field)
sizes = sizes_to_pixels(p.windows["sizes_arcmin"], field.pixel_arcsec, field.shape)
windows = sliding_windows(
    field.shape, sizes, p.windows["stride_fraction"], p.windows["edge_pad"]
)
log.info("%s: %d windows of %s px", field.field, len(windows[0]), [int(s) for s in sizes])
settings = DetectSettings.from_config(p.detect)
boxes, scores = detect_field(
    model, priors, field.data, windows, pp, settings, progress=True, threads=sm.threads
)
keep = scores >= meta["threshold"]
boxes, scores = boxes[keep], scores[keep]
log.info("%d detections at score >= %.2f", len(boxes), meta["threshold"])
table = detections_table(
    boxes, scores, field.wcs, field.pixel_arcsec, field.field, coverage_columns(boxes, field)
)
has_24 = bool(field.coverage_24.any())
if not has_24:
    log.info("%s: no 24 µm data (8 µm only): detections are flagged, never dropped", field.field)
table, keep = apply_poor_cover(table, p.detect["min_cover_24"], p.detect["poor_cover"], has_24)
boxes, scores = boxes[keep], scores[keep]
table.meta["threshold"] = float(meta["threshold"])
table.meta["min_cover_24"] = float(p.detect["min_cover_24"])
table.meta["poor_cover"] = p.detect["poor_cover"]
for out, fmt in [(sm.output.ecsv, "ascii.ecsv"), (sm.output.csv, "ascii.csv")]:
    with atomic_path(out) as tmp:
        table.write(tmp, format=fmt, overwrite=True)
catalog = read_catalog(sm.input.catalog)
catalog = catalog[in_field(catalog, field.wcs, field.shape)]
truth = bubble_boxes(catalog, field.wcs, field.pixel_arcsec, p.windows["box_scale"])
plot_field_detections(
    field.data,
    boxes,
    scores,
    sm.output.figure,
    truth=truth,
    truth_clear=catalog["CLEAR"],
    title=f"{field.field}: {len(boxes)} detections (score >= {meta['threshold']:.2f})",
)
