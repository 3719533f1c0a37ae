"""Driver of rule injection_recall: recall per MajAxis x contrast cell over the injected
fields, with Clopper-Pearson intervals, beside the catalogue's clear bubbles where the
catalogue gives their contrast (skydetect.bubbles.injection_table); table and figure."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])  # noqa: F821

import numpy as np  # noqa: E402
from astropy.table import Table, vstack  # noqa: E402

from skydetect.bubbles.injection_table import (  # noqa: E402
    CONTRAST_COLUMN,
    add_truth,
    recall_cells,
    write_injection_table,
)
from skydetect.plots.injection import plot_injection  # noqa: E402

sm = snakemake  # noqa: F821
inj = sm.params.inject
grid = (inj["majaxis_arcmin"], inj["contrast"])
injections = vstack([Table.read(f, format="ascii.ecsv") for f in sm.input.injections])
cells = recall_cells(injections, *grid)
truth = vstack([Table.read(f, format="ascii.ecsv") for f in sm.input.truth])
if len(truth) and np.isfinite(np.asarray(truth["CONTRAST"], float)).all():
    add_truth(cells, truth, *grid)
else:
    log.info("the catalogue has no %s column: no catalogue recall per cell", CONTRAST_COLUMN)
cells.meta.update(
    {
        "run": sm.wildcards.brun,
        "fields": list(sm.params.fields),
        "per_pass": inj["per_pass"],
        "passes": inj["passes"],
        "strength_24um": inj["strength_24um"],
        "iou_threshold": sm.params.iou_threshold,
        "injected": len(injections),
        "recovered": int(np.sum(injections["FOUND"])),
    }
)
log.info("\n%s", "\n".join(cells.pformat(max_lines=-1, max_width=-1)))
write_injection_table(sm.output.table, cells)
plot_injection(
    cells,
    sm.output.figure,
    title=f"{sm.wildcards.brun}: {cells.meta['recovered']} of {len(injections)} injected "
    f"bubbles recovered ({', '.join(sm.params.fields)})",
)
