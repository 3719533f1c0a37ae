"""Rule predict_tile: U-Net probabilities of a tile's cover patches, averaged per HEALPix pixel."""

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from pathlib import Path  # noqa: E402

# skydetect (imported above with logutil) has set TF_USE_LEGACY_KERAS: tf.keras is Keras 2
import tensorflow as tf  # noqa: E402

from skydetect.clusters import normalise  # noqa: E402
from skydetect.clusters.models import load_model, read_model_json  # noqa: E402
from skydetect.clusters.predict import predict_tile, write_prediction  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(snakemake.threads)
tf.config.threading.set_inter_op_parallelism_threads(1)

model_dir = Path(snakemake.input.model).parent
info = read_model_json(model_dir)
model = load_model(model_dir)
stats = normalise.load(snakemake.input.normalisation)
tile = int(snakemake.wildcards.tile)
log.info("run %s, tile %d: model %s on bands %s", snakemake.wildcards.run, tile,
         info["params"]["architecture"], info["bands"])  # fmt: skip
pmap = predict_tile(
    snakemake.input.cover,
    model,
    info["bands"],
    stats,
    tile,
    batch_size=snakemake.params.batch_size,
    nside=snakemake.params.nside,
    progress=True,
)
write_prediction(pmap, snakemake.output.prediction, snakemake.wildcards.run)
