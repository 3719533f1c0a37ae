"""Both bands of a field on the 8 µm grid (24 µm reprojected, several 24 µm files mosaicked;
8 µm-only: 24 µm NaN), with the per-pixel 24 µm coverage."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

import numpy as np

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.io.spitzer import align_field, write_field  # noqa: E402

m1 = snakemake.input.get("m1", None)
field = align_field(snakemake.input.i4, m1, snakemake.params.name)
n_24 = 0 if not m1 else 1 if isinstance(m1, str) else len(m1)
log.info(
    "field %s: %s px at %.3f arcsec, NaN fraction 24 µm %.4f, 8 µm %.4f; 24 µm coverage "
    "%.4f from %d file(s)%s",
    field.field,
    field.shape,
    field.pixel_arcsec,
    *np.isnan(field.data).mean(axis=(1, 2)),
    field.coverage_24.mean(),
    n_24,
    "" if m1 else " (8 µm only)",
)
write_field(snakemake.output[0], field)
