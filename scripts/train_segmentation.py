"""Driver of rule train_segmentation: train (or resume) the cluster U-Net (skydetect.clusters.train)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import tensorflow as tf  # noqa: E402

from skydetect.clusters.train import train  # noqa: E402
from skydetect.plots.training import plot_learning_curve  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(snakemake.threads)
tf.config.threading.set_inter_op_parallelism_threads(min(2, snakemake.threads))
p = snakemake.params
model_dir = Path(snakemake.output.model).parent
summary = train(
    snakemake.input.train,
    snakemake.input.validation,
    model_dir,
    model_p=dict(p.model),
    train_p=dict(p.train),
    seed=p.seed,
    normalisation=json.loads(Path(snakemake.input.normalisation).read_text()),
)
log.info("training done: %s", summary)
plot_learning_curve(
    snakemake.output.history,
    snakemake.output.figure,
    title=f"{p.model['architecture']} / {p.train['loss']} (run {snakemake.wildcards.run})",
)
