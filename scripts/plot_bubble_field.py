"""Both bands of a field with the catalogue's bubble boxes."""

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.catalog import read_catalog  # noqa: E402
from skydetect.bubbles.windows import field_truth  # noqa: E402
from skydetect.plots.bubbles import plot_tile  # noqa: E402
from skydetect.sky.spitzer import read_tile  # noqa: E402

tile = read_tile(snakemake.input.tile)
truth = field_truth(tile, read_catalog(snakemake.input.catalog), snakemake.params.box_scale)
plot_tile(tile.data, truth["boxes"], truth["clear"], snakemake.output[0], f"field {tile.field}")
