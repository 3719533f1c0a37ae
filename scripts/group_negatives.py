"""k-means classes of the negative windows: a label and a weight per window, montages."""

import numpy as np

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from skydetect.bubbles.negatives import (  # noqa: E402
    CLUSTER_STAGE,
    class_table,
    cluster_windows,
    read_negative_file,
    window_features,
    write_class_table,
)
from skydetect.plots.bubbles import plot_montage  # noqa: E402

cfg = snakemake.params.negatives
seed = snakemake.params.seed
files = [read_negative_file(p) for p in snakemake.input.negatives]
inputs = np.concatenate([f["inputs"] for f in files])
fields = np.concatenate([np.full(len(f["x0"]), f["attrs"]["field"]) for f in files])
index = np.concatenate([np.arange(len(f["x0"])) for f in files])
features = window_features(inputs, cfg["pca_components"], seed)
labels = cluster_windows(features, cfg["n_classes"], seed)
table = class_table(
    fields, index, labels, cfg["n_classes"], cfg["drop_classes"], cfg["class_weights"]
)
log.info("class sizes: %s", np.bincount(labels, minlength=cfg["n_classes"]).tolist())
write_class_table(snakemake.output.table, table)
rng = np.random.default_rng([seed, CLUSTER_STAGE])
for cls, path in enumerate(snakemake.output.figures):
    members = np.flatnonzero(labels == cls)
    shown = rng.permutation(members)[: cfg["montage_size"]]
    kept = "kept" if cls not in cfg["drop_classes"] else "dropped"
    plot_montage(inputs[shown], path, f"negative class {cls}: {len(members)} windows ({kept})")
