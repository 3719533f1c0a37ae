"""k-means groups of the negative windows: a label and a weight per window, montages."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

import numpy as np

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.negative_groups import (  # noqa: E402
    GROUP_STAGE,
    group_table,
    group_windows,
    window_features,
    write_group_table,
)
from skydetect.bubbles.negatives import NegativeInputs, read_negative_file  # noqa: E402
from skydetect.plots.bubbles import plot_montage  # noqa: E402

cfg = snakemake.params.negatives
seed = snakemake.params.seed
paths = list(snakemake.input.negatives)
files = [read_negative_file(p, inputs=False) for p in paths]  # inputs stay on disk
n = [f["n"] for f in files]
file_of = np.repeat(np.arange(len(files)), n)
index = np.concatenate([np.arange(k) for k in n]) if files else np.zeros(0, int)
shape = (cfg_s := files[0]["attrs"]["input_size"], cfg_s, 2) if files else (0, 0, 0)
inputs = NegativeInputs(paths, file_of, index, shape)
fields = np.concatenate([np.full(len(f["x0"]), f["attrs"]["field"]) for f in files])
features = window_features(inputs, cfg["pca_components"], seed)
labels = group_windows(features, cfg["n_groups"], seed)
table = group_table(
    fields, index, labels, cfg["n_groups"], cfg["drop_groups"], cfg["group_weights"]
)
log.info("group sizes: %s", np.bincount(labels, minlength=cfg["n_groups"]).tolist())
write_group_table(snakemake.output.table, table)
rng = np.random.default_rng([seed, GROUP_STAGE])
for group, path in enumerate(snakemake.output.figures):
    members = np.flatnonzero(labels == group)
    shown = np.sort(rng.permutation(members)[: cfg["montage_size"]])
    kept = "kept" if group not in cfg["drop_groups"] else "dropped"
    plot_montage(inputs[shown], path, f"negative group {group}: {len(members)} windows ({kept})")
