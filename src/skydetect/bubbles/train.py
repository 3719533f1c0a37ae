"""Training of the bubble SSD, driven by the validation F2 score.

Each epoch mixes freshly augmented bubble crops (one per clear bubble, regenerated every
epoch by the data side's :class:`skydetect.bubbles.crops.BubbleCrops`) with negative windows
drawn with their per-group weights, ``batch_bubbles`` + ``batch_negatives`` per batch.
Optimiser: AdamW with global gradient-norm clipping. After every ``validate_every`` epochs
(and the last) the model detects
bubbles over the validation windows exactly as inference does (window NMS, merging across
windows and scales, :mod:`skydetect.bubbles.detect`) and is scored with the one-to-one IoU
rule of the test scores (:func:`skydetect.bubbles.evaluate.match_flags`: IoU >= ``iou_threshold``,
recall on the clear bubbles, boxes on unclear bubbles only "don't care"); the score threshold in
``thresholds`` maximising F2 is kept with the model; early stopping on that F2. Given a
``validation_sample`` (:func:`.train_data.validation_sample`), the per-epoch F2 is computed on
it and the final threshold is checked on every validation window with the best weights.

Resumable: after every epoch ``checkpoint/`` receives a TensorFlow checkpoint (weights,
optimiser state, epoch), the best weights so far and ``state.json`` (history, early-stopping
counters); a killed run started again continues with the next epoch. Every random draw comes
from ``np.random.default_rng([seed, 8, epoch])`` (8 = this stage), so a resumed run sees the
same data as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

import skydetect  # noqa: F401  (legacy Keras switch before TensorFlow)

from . import crops as crops_module
from . import ssd as ssd_package
from . import train_batches as train_batches_module
from . import train_data as train_data_module
from . import train_settings as train_settings_module
from . import train_state as train_state_module
from . import validation as validation_module
from .detect import DetectSettings
from .ssd.loss import SSDLoss
from .ssd.model import build_ssd, save_model
from .train_batches import epoch_batches, epoch_targets, make_targets
from .train_data import (  # noqa: F401  (the training data, re-exported for the drivers)
    ValidationField,
    files_key,
    load_all_data,
    load_training_data,
    load_validation,
)
from .train_settings import TrainSettings, epoch_learning_rate
from .train_state import record_epoch, resume_or_reset, write_history
from .validation import final_threshold, validate  # noqa: F401  (validate: for the drivers)

log = logging.getLogger(__name__)

STAGE = 8  # seed component of this stage


def train_step(model, loss_fn, opt, mixed: bool = False):
    """One SSD training step, compiled: ``step(x, y) -> (loss, localisation, confidence)``
    (the model's own losses added; with ``mixed``, ``opt`` is a LossScaleOptimizer)."""
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            loc_l, conf_l = loss_fn.terms(y, pred)
            loss = loc_l + conf_l
            if model.losses:
                loss += tf.add_n(model.losses)
            scaled = opt.get_scaled_loss(loss) if mixed else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        if mixed:
            grads = opt.get_unscaled_gradients(grads)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, loc_l, conf_l

    return step


def _check_min_score(detect: DetectSettings, settings: TrainSettings) -> None:
    if detect.min_score > min(settings.thresholds):
        raise ValueError(
            f"config: bubbles.detect.min_score ({detect.min_score}) exceeds the lowest of "
            f"bubbles.train.thresholds ({min(settings.thresholds)})"
        )


def _optimiser(tf, model, settings: TrainSettings):
    """(optimiser to step, the AdamW inside it, mixed precision): AdamW with global gradient
    clipping, wrapped in dynamic loss scaling for a model built under mixed_float16 (clipping
    and AdamW act on the unscaled float32 gradients)."""
    opt = tf.keras.optimizers.AdamW(
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        global_clipnorm=settings.clipnorm if settings.clipnorm else None,
    )
    opt.build(model.trainable_variables)
    adamw = opt
    mixed = any(layer.compute_dtype == "float16" for layer in model.layers)
    if mixed:
        opt = tf.keras.mixed_precision.LossScaleOptimizer(opt)
    return opt, adamw, mixed


def _epoch_crops(bubbles, settings: TrainSettings, epoch: int):
    """The bubble crops of epoch ``epoch``: (inputs, boxes, "don't care" boxes) lists over
    ``crop_repeats`` passes."""
    crops, boxes, ignore = [], [], []
    for r in range(settings.crop_repeats):
        for x, b, ign in epoch_targets(bubbles, epoch * settings.crop_repeats + r):
            crops.append(np.asarray(x, np.float32))
            boxes.append(np.asarray(b, np.float64).reshape(-1, 4))
            ignore.append(np.asarray(ign, np.float64).reshape(-1, 4))
    return crops, boxes, ignore


def _run_steps(tf, step, batches, size: int, priors, settings: TrainSettings):
    """Step through ``batches``; returns (summed loss terms (3,), images, steps)."""
    sums, n_img, n_steps = np.zeros(3), 0, 0
    for x, bx, ig in batches:
        y = make_targets(bx, size, priors, settings.iou_match, ig, settings.min_cover)
        sums += [float(v) for v in step(tf.constant(x), tf.constant(y))]
        n_img += len(x)
        n_steps += 1
    return sums, n_img, n_steps


def _validate_epoch(model, priors, fields, detect, settings: TrainSettings, epoch: int):
    """(validated, threshold, F2, precision, recall) after epoch ``epoch`` (NaN when this
    epoch is not validated)."""
    every = max(int(settings.validate_every), 1)
    validated = (epoch + 1) % every == 0 or epoch + 1 == settings.epochs
    nan = float("nan")
    thr, f2, prec, rec = nan, nan, nan, nan
    if validated:
        thr, counts = validate(
            model, priors, fields, detect, settings.thresholds, settings.iou_threshold
        )
        f2, prec, rec = counts.f2, counts.precision, counts.recall
    return validated, thr, f2, prec, rec


def _log_epoch(row: dict, improved: bool, validated: bool) -> None:
    log.info(
        "epoch %d: loss %.4f  val F2 %.3f (P %.3f R %.3f at %.2f)  %.1f img/s%s",
        row["epoch"],
        row["loss"],
        row["val_f2"],
        row["val_precision"],
        row["val_recall"],
        row["threshold"],
        row["images_per_s"],
        "  *" if improved else "" if validated else "  (not validated)",
    )


class _EpochRunner:
    """The epochs of :func:`train_ssd`: each one's data, steps and validation."""

    def __init__(self, tf, model, priors, step, settings, detect, fields, negatives, seed):
        self.tf, self.model, self.priors, self.step = tf, model, priors, step
        self.settings, self.detect, self.fields, self.seed = settings, detect, fields, seed
        self.size = int(model.input_shape[1])
        neg_x = negatives["inputs"] if negatives is not None and len(negatives["inputs"]) else None
        self.neg_x, self.neg_w = neg_x, (negatives["weight"] if neg_x is not None else None)

    def run(self, epoch: int, bubbles, adamw) -> tuple[dict, bool]:
        """Train and (when due) validate epoch ``epoch``: its history row, and whether it
        was validated."""
        settings = self.settings
        rng = np.random.default_rng([self.seed, STAGE, epoch])
        adamw.learning_rate.assign(epoch_learning_rate(settings, epoch))
        t0 = time.perf_counter()
        crops, boxes, ignore = _epoch_crops(bubbles, settings, epoch)
        t_data = time.perf_counter() - t0
        t1 = time.perf_counter()
        batches = epoch_batches(crops, boxes, self.neg_x, self.neg_w, settings, rng, ignore)
        sums, n_img, n_steps = _run_steps(
            self.tf, self.step, batches, self.size, self.priors, settings
        )
        t_train = time.perf_counter() - t1
        validated, thr, f2, prec, rec = _validate_epoch(
            self.model, self.priors, self.fields, self.detect, settings, epoch
        )
        row = {
            "epoch": epoch + 1,
            "loss": sums[0] / max(n_steps, 1),
            "loc_loss": sums[1] / max(n_steps, 1),
            "conf_loss": sums[2] / max(n_steps, 1),
            "val_f2": f2,
            "val_precision": prec,
            "val_recall": rec,
            "threshold": thr,
            "learning_rate": epoch_learning_rate(settings, epoch),
            "images_per_s": n_img / t_train if t_train > 0 else float("nan"),
            "data_s": t_data,
            "seconds": time.perf_counter() - t0,
        }
        return row, validated


def train_ssd(
    model,
    priors,
    bubbles,
    negatives: dict | None,
    validation: Sequence[ValidationField],
    settings: TrainSettings,
    out_dir: str | Path,
    seed: int,
    detect: DetectSettings | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    resume_key=None,
    validation_sample: Sequence[ValidationField] | None = None,
) -> dict:
    """Train ``model`` (built by :func:`.ssd.model.build_ssd`) and save it to ``out_dir``.

    The epochs are validated on ``validation_sample`` when given (then the best weights'
    threshold is chosen again on every window of ``validation``), else on ``validation``.

    ``bubbles.epoch(e)`` yields ``(input (S, S, C), boxes (m, 4) in input pixels)``;
    ``negatives`` is a dict with ``inputs`` (N, S, S, C) and ``weight`` (N,) (or None).
    Writes ``model.json`` + ``weights.h5`` (best epoch, with ``threshold`` and ``val_f2``),
    ``history.csv`` and ``checkpoint/``. Returns the summary written into model.json.
    A checkpoint is resumed only when ``settings``, ``seed`` and ``resume_key`` (JSON-able,
    e.g. :func:`files_key` of the inputs) equal those it was written with; otherwise training
    starts over.
    """
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    detect = detect or DetectSettings()
    _check_min_score(detect, settings)
    out = Path(out_dir)
    ckpt_dir = out / "checkpoint"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    loss_fn = SSDLoss(settings.neg_pos_ratio, settings.min_negatives)
    opt, adamw, mixed = _optimiser(tf, model, settings)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, epoch=epoch_var)
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=2)
    state_path = ckpt_dir / "state.json"
    best_path = ckpt_dir / "best_weights.h5"
    key = json.loads(
        json.dumps(
            {"settings": asdict(settings), "seed": seed, "data": resume_key, "code": code_key()}
        )
    )
    state = resume_or_reset(ckpt, ckpt_dir, key, settings)
    step = train_step(model, loss_fn, opt, mixed)
    epoch_fields = validation if validation_sample is None else validation_sample
    runner = _EpochRunner(tf, model, priors, step, settings, detect, epoch_fields, negatives, seed)
    every = max(int(settings.validate_every), 1)

    stopped = state["wait"] >= settings.patience
    while state["epoch"] < settings.epochs and not stopped:
        epoch = int(state["epoch"])
        row, validated = runner.run(epoch, bubbles, adamw)
        improved = record_epoch(
            state, row, validated, every, model, best_path, epoch_var, manager, state_path
        )
        _log_epoch(row, improved, validated)
        stopped = state["wait"] >= settings.patience
        if stopped:
            log.info("early stopping: no F2 improvement in %d epochs", settings.patience)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)

    if best_path.exists():
        model.load_weights(str(best_path))
    return _finish(model, priors, validation, validation_sample, detect, settings, state, out, seed)


def _finish(model, priors, validation, validation_sample, detect, settings, state, out, seed):
    """Choose the final threshold, write ``history.csv`` and the model; the summary."""
    threshold = state["best_threshold"] if state["best_threshold"] is not None else 0.5
    val_f2 = max(state["best_f2"], 0.0)
    final = {}
    if validation_sample is not None:
        threshold, val_f2, final = final_threshold(
            model, priors, validation, detect, settings, val_f2
        )
    summary = {
        "threshold": threshold,
        "val_f2": val_f2,
        **final,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "seed": seed,
        "train": asdict(settings),
        "detect": asdict(detect),
    }
    write_history(state["history"], out / "history.csv")
    save_model(model, out, extra=summary)
    return {**summary, "history": state["history"]}


def code_key() -> str:
    """Library version + hash of the training code: a checkpoint of other code is not resumed."""
    h = hashlib.sha256(skydetect.__version__.encode())
    modules = (crops_module, train_data_module, validation_module)
    modules += (train_batches_module, train_settings_module, train_state_module)
    sources = (__file__, *(m.__file__ for m in modules))
    for source in (*sources, *sorted(Path(ssd_package.__file__).parent.glob("*.py"))):
        h.update(Path(source).read_bytes())
    return f"{skydetect.__version__}+{h.hexdigest()[:12]}"


ARCH_KEYS = ("backbone", "width", "scales", "aspect_ratios")


def build_and_train(
    ssd_cfg: dict,
    input_size: int,
    settings: TrainSettings,
    detect,
    crops,
    negatives,
    validation,
    out_dir,
    seed: int,
    extra: dict | None = None,
    resume_key=None,
    on_epoch_end=None,
    validation_sample=None,
) -> dict:
    """Seed TensorFlow, build the SSD of ``ssd_cfg`` (architecture keys of ``bubbles.ssd``)
    for ``input_size`` and train it with :func:`train_ssd`; ``extra`` goes into model.json."""
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    tf.keras.utils.set_random_seed(int(np.random.SeedSequence([seed, STAGE]).generate_state(1)[0]))
    arch = {k: ssd_cfg[k] for k in ARCH_KEYS if ssd_cfg.get(k) is not None}
    settings = replace(settings, mixed_precision=use_mixed_precision(settings.mixed_precision))
    policy = tf.keras.mixed_precision.global_policy()
    if settings.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
        log.info("mixed precision: float16 compute, float32 weights, dynamic loss scaling")
    try:
        model, priors = build_ssd({**arch, "input_size": int(input_size)})
    finally:
        tf.keras.mixed_precision.set_global_policy(policy)
    res = train_ssd(
        model,
        priors,
        crops,
        negatives,
        validation,
        settings,
        out_dir,
        seed,
        detect,
        on_epoch_end=on_epoch_end,
        resume_key=resume_key,
        validation_sample=validation_sample,
    )
    if extra:
        meta = {k: v for k, v in res.items() if k != "history"}
        save_model(model, out_dir, extra={**meta, **extra})
    return res


def use_mixed_precision(setting) -> bool:
    """``bubbles.train.mixed_precision``: true, false, or "auto" (true when TensorFlow sees a
    GPU; float16 on a CPU is slower, not faster)."""
    if isinstance(setting, str):
        if setting != "auto":
            raise ValueError(
                f"config: bubbles.train.mixed_precision is {setting!r} (true, false or auto)"
            )
        import tensorflow as tf  # lazy: slow to import; only the TF functions need it

        return bool(tf.config.list_physical_devices("GPU"))
    return bool(setting)


def set_threads(n: int) -> None:
    """Limit TensorFlow to ``n`` threads (the job's Snakemake threads)."""
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    tf.config.threading.set_intra_op_parallelism_threads(int(n))
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(n))))
