"""Driver of rule bubble_survey: per-field detections -> one whole-plane catalogue."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

import numpy as np  # noqa: E402

from skydetect.bubbles.catalog import read_catalog  # noqa: E402
from skydetect.bubbles.detect import read_detections  # noqa: E402
from skydetect.bubbles.survey import merge_fields, survey_catalog, survey_counts  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.plots.bubble_detections import plot_survey  # noqa: E402

sm = snakemake  # noqa: F821
p = sm.params
tables = [read_detections(path)[2] for path in sm.input.detections]
merged = merge_fields(tables, p.survey["merge_iou"])
log.info("%d detections in %d fields, %d after the cross-field NMS",
         sum(len(t) for t in tables), len(tables), len(merged))
mwp = read_catalog(sm.input.catalog)
cat = survey_catalog(merged, mwp, p.box_scale, p.survey["match_factor"])
counts = survey_counts(cat, mwp, list(p.fields), {f: tuple(v) for f, v in p.field_lon.items()})
with atomic_path(sm.output.fits) as tmp:
    cat.write(tmp, format="fits", overwrite=True)
with atomic_path(sm.output.csv) as tmp:  # comma-separated; units in the ECSV header lines
    cat.write(tmp, format="ascii.ecsv", delimiter=",", overwrite=True)
with atomic_path(sm.output.counts) as tmp:
    counts.write(tmp, format="ascii.fixed_width_two_line", overwrite=True)
log.info("\n%s", "\n".join(counts.pformat(max_lines=-1)))
plot_survey(
    cat["GLON"], cat["GLAT"], cat["MajAxis"], np.asarray(cat["STATUS"]) == "KNOWN",
    sm.output.figure,
    title=f"{len(cat)} bubbles, {int((cat['STATUS'] == 'NEW').sum())} not in MWP",
)
