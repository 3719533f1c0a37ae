"""Both bands of a field with the catalogue's bubble boxes."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import read_catalog  # noqa: E402
from skydetect.bubbles.windows import field_truth  # noqa: E402
from skydetect.io.spitzer import read_field  # noqa: E402
from skydetect.plots.bubbles import plot_field  # noqa: E402

field = read_field(snakemake.input.field)
truth = field_truth(field, read_catalog(snakemake.input.catalog), snakemake.params.box_scale)
plot_field(field.data, truth["boxes"], truth["clear"], snakemake.output[0], f"field {field.field}")
