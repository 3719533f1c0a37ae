"""Driver of rule evaluate_bubbles: test-field detections vs the catalogue / mock truth."""

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from skydetect.bubbles.detect import read_detections  # noqa: E402
from skydetect.bubbles.evaluate import evaluate_fields, format_table  # noqa: E402
from skydetect.bubbles.tune import write_json  # noqa: E402
from skydetect.bubbles.windows import read_windows  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402

sm = snakemake  # noqa: F821
win = read_windows(sm.input.windows)
detections = {}
for path in sm.input.detections:
    boxes, scores, _ = read_detections(path)
    detections[Path(path).stem] = (boxes, scores)
truth = {f: (np.asarray(t["boxes"]), np.asarray(t["clear"], bool)) for f, t in win["truth"].items()}
result = evaluate_fields(detections, truth, sm.params.min_cover, sm.params.iou_threshold)
result["run"] = sm.wildcards.brun
table = format_table(result)
print(table)
log.info("\n%s", table)
write_json(result, sm.output.summary)
with atomic_path(sm.output.table) as tmp:
    tmp.write_text(table + "\n")
