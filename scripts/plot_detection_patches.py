"""Rule plot_detection_patches: cover patches with bands, true mask, probability, detections."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

from skydetect.clusters import normalise  # noqa: E402
from skydetect.clusters.predict import read_cover, read_prediction, sample_map  # noqa: E402
from skydetect.geometry.projection import lonlat_to_patch  # noqa: E402
from skydetect.plots.detections import plot_patch_panels, select_patches  # noqa: E402

pmap = read_prediction(snakemake.input.prediction)
stats = normalise.load(snakemake.input.normalisation)
bands = [str(b) for b in pmap.attrs["bands"]]  # the model's bands
data, attrs = read_cover(snakemake.input.cover, bands)
size, pix_arcmin = int(attrs["size"]), float(attrs["pixel_arcmin"])
geo = (data["glon"], data["glat"], data["angle"], data["flip"])
prob = sample_map(pmap, *geo, size, pix_arcmin)
masks = data.get("masks")
score = np.nansum(prob > 0.5, axis=(1, 2)) + (masks.sum(axis=(1, 2)) if masks is not None else 0)
pick = select_patches(score, data["glon"], data["glat"], snakemake.params.n_panels,
                      size * pix_arcmin / 60.0)  # fmt: skip
cand = Table.read(snakemake.input.candidates, format="fits")
marks = []
for i in pick:
    x, y = lonlat_to_patch(np.asarray(cand["GLON"]), np.asarray(cand["GLAT"]), data["glon"][i],
                           data["glat"][i], size, pix_arcmin, data["angle"][i], data["flip"][i])  # fmt: skip
    inside = np.isfinite(x) & (x > -0.5) & (x < size - 0.5) & (y > -0.5) & (y < size - 0.5)
    marks.append((x[inside], y[inside], np.asarray(cand["RADIUS"])[inside] / pix_arcmin))
titles = [f"l={data['glon'][i]:.2f} b={data['glat'][i]:.2f}" for i in pick]
plot_patch_panels(
    normalise.apply(data["inputs"][pick], stats, bands),
    bands,
    masks[pick] if masks is not None else None,
    prob[pick],
    marks,
    snakemake.output.figure,
    titles,
    f"run {snakemake.wildcards.run}, tile {snakemake.params.tile}: cover patches, detections circled",
)
log.info("plotted patches %s", pick)
