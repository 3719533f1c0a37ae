"""Driver of rule inject_bubbles: synthetic bubbles painted into one field, detection re-run
on the windows near them (skydetect.bubbles.inject), and the field's catalogue bubbles with
their recovery by the existing detections."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from skydetect.bubbles.catalog import in_field, read_catalog  # noqa: E402
from skydetect.bubbles.detect import DetectSettings, detect_field, read_detections  # noqa: E402
from skydetect.bubbles.inject import grid_cells, inject_field  # noqa: E402
from skydetect.bubbles.injection_table import CONTRAST_COLUMN, truth_found  # noqa: E402
from skydetect.bubbles.ssd.model import load_model  # noqa: E402
from skydetect.bubbles.train import set_threads  # noqa: E402
from skydetect.bubbles.windows import field_truth, sizes_to_pixels, sliding_windows  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.io.spitzer import read_field  # noqa: E402

INJECT_STAGE = 71  # seed component of the injections

sm = snakemake  # noqa: F821
p, inj = sm.params, sm.params.inject
set_threads(sm.threads)
model, priors, meta = load_model(Path(sm.input.model).parent)
pp, threshold = p.preprocess, float(meta["threshold"])
field = read_field(sm.input.field)
sizes = sizes_to_pixels(p.windows["sizes_arcmin"], field.pixel_arcsec, field.shape)
windows = sliding_windows(field.shape, sizes, p.windows["stride_fraction"], p.windows["edge_pad"])
settings = DetectSettings.from_config(p.detect)


def detect(image, near):
    boxes, scores = detect_field(model, priors, image, near, pp, settings, threads=sm.threads)
    keep = scores >= threshold
    return boxes[keep], scores[keep]


catalog = read_catalog(sm.input.catalog)
catalog = catalog[in_field(catalog, field.wcs, field.shape)]
truth = field_truth(field, catalog, p.windows["box_scale"])
pred, scores, _ = read_detections(sm.input.detections)
name = sm.wildcards.field
rng = np.random.default_rng([p.seed, INJECT_STAGE, zlib.crc32(name.encode())])
table = inject_field(
    field.data, field.wcs, field.pixel_arcsec, detect, windows,
    grid_cells(inj["majaxis_arcmin"], inj["contrast"]),
    per_pass=inj["per_pass"], passes=inj["passes"], rng=rng, field=name,
    avoid=np.concatenate([truth["boxes"], pred]), iou_threshold=p.iou_threshold,
    box_scale=p.windows["box_scale"], strength24=inj["strength_24um"],
    separation=inj["separation"], beam_px=[b / field.pixel_arcsec for b in p.beams_arcsec],
)  # fmt: skip
table.meta.update({"field": name, "threshold": threshold, "iou_threshold": p.iou_threshold})
n_asked = inj["per_pass"] * inj["passes"]
log.info("%s: %d of %d injections recovered (%d asked)", name, int(table["FOUND"].sum()),
         len(table), n_asked)  # fmt: skip
contrast = (
    np.asarray(catalog[CONTRAST_COLUMN], float)
    if CONTRAST_COLUMN in catalog.colnames
    else np.full(len(catalog), np.nan)
)
found = truth_found(truth, contrast, pred, scores, p.iou_threshold)
for t, out in ((table, sm.output.injections), (found, sm.output.truth)):
    with atomic_path(out) as tmp:
        t.write(tmp, format="ascii.ecsv", overwrite=True)
