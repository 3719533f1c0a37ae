"""Rule evaluate: completeness and purity of a run's candidates (against the truth if known)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

import json  # noqa: E402

from astropy.table import Table  # noqa: E402

from skydetect.clusters.crossmatch import known_catalog  # noqa: E402
from skydetect.clusters.detect import write_table_atomic  # noqa: E402
from skydetect.clusters.evaluate import evaluate, format_summary  # noqa: E402
from skydetect.io.atomic import atomic_path  # noqa: E402
from skydetect.io.catalogs import read_catalog  # noqa: E402
from skydetect.plots.detections import plot_completeness, plot_sky_map  # noqa: E402

NAME_COLUMN = {"psz2": "NAME", "mcxc": "MCXC"}

run = snakemake.wildcards.run
cfg = snakemake.params.evaluate
candidates = Table.read(snakemake.input.candidates, format="fits")
# the run's operating point (clusters.evaluate.operating_point): detections go lower, for the
# scorecard's threshold sweep
score, threshold = snakemake.params.operating_point
n_all = len(candidates)
candidates = candidates[candidates[score] >= threshold]
log.info("run %s: %d of %d candidates with %s >= %g", run, len(candidates), n_all, score,
         threshold)  # fmt: skip
known = {
    name.upper(): known_catalog(
        read_catalog(name, snakemake.input[name]), NAME_COLUMN[name], snakemake.input[name]
    )
    for name in snakemake.params.catalogs
    if name in NAME_COLUMN
}
truth = None
if "truth" in snakemake.input.keys():
    truth = Table.read(snakemake.input.truth, format="ascii.ecsv")
summary, curves, matched = evaluate(
    candidates,
    snakemake.params.tiles,
    truth,
    known,
    snakemake.params.cluster_radius_arcmin,
    cfg["theta500_scale"],
    cfg["min_radius_arcmin"],
    cfg["max_radius_arcmin"],
    {"SNR": cfg["snr_bins"], "M500": cfg["m500_bins"], "Z": cfg["z_bins"]},
    min_truth_snr=cfg["min_truth_snr"],
)
summary["operating_point"] = {"score": score, "threshold": threshold}
summary["run"] = run
text = format_summary(run, summary)
log.info("\n%s", text)
print(text)

write_table_atomic(curves, snakemake.output.curves)
if matched is None:  # real sky: no truth to match
    matched = Table(names=["GLON", "GLAT", "DETECTED"], dtype=[float, float, bool])
write_table_atomic(matched, snakemake.output.matched)
plot_completeness(curves, summary, snakemake.output.completeness, run)
plot_sky_map(candidates, snakemake.params.tiles, snakemake.output.sky_map, truth,
             f"run {run}: {len(candidates)} candidates")  # fmt: skip
with atomic_path(snakemake.output.summary) as tmp, open(tmp, "w") as fh:
    json.dump(summary, fh, indent=2)
