"""Driver of rule evaluate_bubbles: test-field detections vs the catalogue / mock truth."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from skydetect.bubbles.chance import chance_rates  # noqa: E402
from skydetect.bubbles.detect import read_detections  # noqa: E402
from skydetect.bubbles.evaluate import evaluate_fields, format_table  # noqa: E402
from skydetect.bubbles.summary import evaluation_summary, format_summary  # noqa: E402
from skydetect.bubbles.tune import write_json  # noqa: E402
from skydetect.bubbles.windows import read_windows  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.io.spitzer import read_field  # noqa: E402

sm = snakemake  # noqa: F821
win = read_windows(sm.input.windows)
detections = {}
for path in sm.input.detections:
    boxes, scores, _ = read_detections(path)
    detections[Path(path).stem] = (boxes, scores)
truth = {f: (np.asarray(t["boxes"]), np.asarray(t["clear"], bool)) for f, t in win["truth"].items()}
result = evaluate_fields(detections, truth, sm.params.min_cover, sm.params.iou_threshold)
summary = evaluation_summary(
    detections, win["truth"], sm.params.min_cover, iou_threshold=sm.params.iou_threshold
)
# coverage of each test field: the pixels with finite 8 µm data (channel 1)
coverage = {Path(p).stem: np.isfinite(read_field(p).data[1]) for p in sm.input.fields}
summary.update(
    chance_rates(
        detections,
        win["truth"],
        coverage,
        draws=sm.params.chance_draws,
        seed=sm.params.seed,
        min_cover=sm.params.min_cover,
        iou_threshold=sm.params.iou_threshold,
    )
)
text = f"{format_summary(summary)}\n\n{format_table(result)}"
print(text)
log.info("\n%s", text)
write_json({"run": sm.wildcards.brun, **summary, "rules": result["rules"]}, sm.output.summary)
with atomic_path(sm.output.table) as tmp:
    Path(tmp).write_text(text + "\n")
