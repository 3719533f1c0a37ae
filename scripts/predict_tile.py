"""Rule predict_tile: U-Net probabilities of a tile's cover patches, averaged per HEALPix pixel."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # this workflow's own library first

from skydetect.logutil import setup_script_logging

log = setup_script_logging(snakemake.log[0])

from pathlib import Path  # noqa: E402

# skydetect (imported above with logutil) has set TF_USE_LEGACY_KERAS: tf.keras is Keras 2
from skydetect.clusters import inference, normalise  # noqa: E402
from skydetect.clusters.models import read_model_json  # noqa: E402
from skydetect.clusters.predict import predict_tile, write_prediction  # noqa: E402

streams = inference.resolve_streams(snakemake.params.streams, snakemake.threads)
inference.configure_threads(snakemake.threads, streams)
precision = inference.resolve_precision(snakemake.params.precision)
model_dir = Path(snakemake.input.model).parent
info = read_model_json(model_dir)
model = inference.load_for_inference(model_dir, precision)
stats = normalise.load(snakemake.input.normalisation)
tile = int(snakemake.wildcards.tile)
# the run's input bands, chosen as at training time (clusters.train.runs.<run>.bands)
bands = list(snakemake.params.bands)
if list(bands) != list(info["bands"]):
    raise ValueError(f"{snakemake.input.model}: trained on bands {info['bands']}, but "
                     f"'clusters.train.runs.{snakemake.wildcards.run}.bands' is {bands}")  # fmt: skip
log.info("run %s, tile %d: model %s on bands %s", snakemake.wildcards.run, tile,
         info["params"]["architecture"], bands)  # fmt: skip
pmap = predict_tile(
    snakemake.input.cover,
    model,
    bands,
    stats,
    tile,
    batch_size=snakemake.params.batch_size,
    nside=snakemake.params.nside,
    progress=True,
    precision=precision,
    streams=streams,
)
write_prediction(pmap, snakemake.output.prediction, snakemake.wildcards.run)
