"""Training of the bubble SSD, driven by the validation F2 score.

Each epoch mixes freshly augmented bubble crops (one per clear bubble, regenerated every
epoch by the data side's :class:`skydetect.bubbles.crops.BubbleCrops`) with negative windows
drawn with their per-class weights, ``batch_bubbles`` + ``batch_negatives`` per batch.
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from astropy.table import Table

import skydetect  # noqa: F401  (legacy Keras switch before TensorFlow)
from skydetect.io.atomic import atomic_path

from . import crops as crops_module
from . import ssd as ssd_package
from . import train_data as train_data_module
from . import validation as validation_module
from .detect import DetectSettings
from .ssd.boxes import match
from .ssd.loss import SSDLoss
from .ssd.model import build_ssd, save_model
from .train_data import (  # noqa: F401  (the training data, re-exported for the drivers)
    ValidationField,
    files_key,
    load_all_data,
    load_training_data,
    load_validation,
)
from .validation import final_threshold, validate  # noqa: F401  (validate: for the drivers)

log = logging.getLogger(__name__)

STAGE = 8  # seed component of this stage


@dataclass
class TrainSettings:
    """Training hyper-parameters (``bubbles.train`` + loss/matching from ``bubbles.ssd``)."""

    epochs: int = 10
    patience: int = 5
    batch_bubbles: int = 16
    batch_negatives: int = 16
    crop_repeats: int = 1  # independent augmented crops of every bubble per epoch
    validate_every: int = 1  # validation F2 after every this many epochs (and the last)
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": per-epoch cosine decay to lr_min_fraction
    lr_min_fraction: float = 0.05
    weight_decay: float = 1e-3
    clipnorm: float = 1.0
    iou_match: float = 0.5
    neg_pos_ratio: float = 3.0
    min_negatives: int = 8
    min_cover: float = 1 / 3  # "don't care" cover of the unclear bubbles in the targets
    iou_threshold: float = 0.5  # the validation F2's one-to-one matching (bubbles.evaluate)
    validation_background_windows: int | None = None  # recorded: which sample was validated
    mixed_precision: bool | str = "auto"  # float16 compute: "auto" = on a GPU only
    thresholds: list = field(
        default_factory=lambda: [round(t, 2) for t in np.arange(0.5, 0.951, 0.05)]
    )

    @classmethod
    def from_config(cls, train: dict, ssd: dict | None = None, **override) -> TrainSettings:
        merged = {**(ssd or {}), **train, **override}
        return cls(**{k: merged[k] for k in cls.__dataclass_fields__ if k in merged})


def make_targets(
    boxes_px: Sequence[np.ndarray],
    input_size: int,
    priors,
    iou_match=0.5,
    ignore_px: Sequence[np.ndarray] | None = None,
    ignore_cover: float = 1 / 3,
):
    """SSD targets (B, N, 5) for boxes given in input pixels (one (m, 4) array per image);
    priors over the "don't care" boxes ``ignore_px`` (unclear bubbles) get label -1."""
    out = np.zeros((len(boxes_px), len(priors), 5), np.float32)
    for i, b in enumerate(boxes_px):
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4) / float(input_size)
        ign = None
        if ignore_px is not None and len(ignore_px[i]):
            ign = np.clip(np.asarray(ignore_px[i], np.float64).reshape(-1, 4) / input_size, 0, 1)
        loc, labels = match(np.clip(b, 0.0, 1.0), priors, iou_match, ignore_corners=ign,
                            ignore_cover=ignore_cover)
        out[i, :, :4] = loc
        out[i, :, 4] = labels
    return out


def _augment_negatives(x: np.ndarray, rng) -> np.ndarray:
    k = rng.integers(0, 4, len(x))
    flip = rng.random(len(x)) < 0.5
    out = np.empty_like(x)
    for i in range(len(x)):
        a = np.rot90(x[i], k[i], axes=(0, 1))
        out[i] = a[:, ::-1] if flip[i] else a
    return out


def epoch_batches(crops, boxes, negatives, weights, settings: TrainSettings, rng, ignore=None):
    """Batches ``(inputs, boxes_px_list, dont_care_list)`` of one epoch: shuffled bubble crops
    (``ignore``: their "don't care" boxes, or None), each batch topped up with
    ``batch_negatives`` negatives drawn with probability ~ ``weights``."""
    n_b = len(crops)
    order = rng.permutation(n_b)
    n_batches = max(1, -(-n_b // settings.batch_bubbles)) if n_b else 0
    n_neg = len(negatives) if negatives is not None else 0
    need = n_batches * settings.batch_negatives if n_neg else 0
    neg_idx = np.zeros(0, int)
    if need:
        w = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("negative windows: weights must be finite with a positive sum")
        neg_idx = rng.choice(n_neg, size=need, replace=need > np.count_nonzero(w), p=w / w.sum())
    for k in range(n_batches):
        bi = order[k * settings.batch_bubbles : (k + 1) * settings.batch_bubbles]
        ni = np.sort(neg_idx[k * settings.batch_negatives : (k + 1) * settings.batch_negatives])
        parts = [np.asarray(crops)[bi]] if len(bi) else []
        bx = [boxes[i] for i in bi]
        ig = [ignore[i] if ignore is not None else np.zeros((0, 4)) for i in bi]
        if len(ni):
            parts.append(_augment_negatives(np.asarray(negatives[ni]), rng))
            bx += [np.zeros((0, 4))] * len(ni)
            ig += [np.zeros((0, 4))] * len(ni)
        yield np.concatenate(parts).astype(np.float32), bx, ig


def _epoch_targets(bubbles, e):
    """``(input, boxes, dont_care)`` of one pass over the bubble crops: ``bubbles.targets(e)``
    where the generator has "don't care" boxes, else ``bubbles.epoch(e)`` with none."""
    if hasattr(bubbles, "targets"):
        yield from bubbles.targets(e)
    else:
        for x, b in bubbles.epoch(e):
            yield x, b, np.zeros((0, 4))


def _write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


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
    if detect.min_score > min(settings.thresholds):
        raise ValueError(
            f"config: bubbles.detect.min_score ({detect.min_score}) exceeds the lowest of "
            f"bubbles.train.thresholds ({min(settings.thresholds)})"
        )
    out = Path(out_dir)
    ckpt_dir = out / "checkpoint"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    size = int(model.input_shape[1])
    loss_fn = SSDLoss(settings.neg_pos_ratio, settings.min_negatives)
    opt = tf.keras.optimizers.AdamW(
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        global_clipnorm=settings.clipnorm if settings.clipnorm else None,
    )
    opt.build(model.trainable_variables)
    adamw = opt
    # a model built under the mixed_float16 policy: dynamic loss scaling (clipping and AdamW
    # act on the unscaled float32 gradients)
    mixed = any(layer.compute_dtype == "float16" for layer in model.layers)
    if mixed:
        opt = tf.keras.mixed_precision.LossScaleOptimizer(opt)
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
    state = {
        "epoch": 0,
        "best_f2": -1.0,
        "best_threshold": None,
        "best_epoch": None,
        "wait": 0,
        "history": [],
        "checkpoint": None,
        "key": key,
    }
    if state_path.exists():
        old = json.loads(state_path.read_text())
        # a finished run is never resumed: a forced rerun trains from scratch
        finished = old.get("epoch", 0) >= settings.epochs or old.get("wait", 0) >= settings.patience
        if old.get("key") == key and finished:
            log.warning("%s: the run there finished; a rerun trains from scratch", state_path)
            for f in ckpt_dir.iterdir():
                f.unlink()
        elif old.get("key") == key:
            state = old
            ckpt.restore(state["checkpoint"]).assert_existing_objects_matched()
            log.info("resuming from %s after epoch %d", state["checkpoint"], state["epoch"])
        else:
            log.warning("%s: checkpoint of other settings or data; starting over", state_path)
            for f in ckpt_dir.iterdir():
                f.unlink()

    neg_x = negatives["inputs"] if negatives is not None and len(negatives["inputs"]) else None
    neg_w = negatives["weight"] if neg_x is not None else None

    step = train_step(model, loss_fn, opt, mixed)
    epoch_fields = validation if validation_sample is None else validation_sample

    stopped = state["wait"] >= settings.patience
    while state["epoch"] < settings.epochs and not stopped:
        epoch = int(state["epoch"])
        rng = np.random.default_rng([seed, STAGE, epoch])
        adamw.learning_rate.assign(epoch_learning_rate(settings, epoch))
        t0 = time.perf_counter()
        crops, boxes, ignore = [], [], []
        for r in range(settings.crop_repeats):
            for x, b, ign in _epoch_targets(bubbles, epoch * settings.crop_repeats + r):
                crops.append(np.asarray(x, np.float32))
                boxes.append(np.asarray(b, np.float64).reshape(-1, 4))
                ignore.append(np.asarray(ign, np.float64).reshape(-1, 4))
        t_data = time.perf_counter() - t0
        sums, n_img, n_steps = np.zeros(3), 0, 0
        t1 = time.perf_counter()
        for x, bx, ig in epoch_batches(crops, boxes, neg_x, neg_w, settings, rng, ignore):
            y = make_targets(bx, size, priors, settings.iou_match, ig, settings.min_cover)
            sums += [float(v) for v in step(tf.constant(x), tf.constant(y))]
            n_img += len(x)
            n_steps += 1
        t_train = time.perf_counter() - t1
        every = max(int(settings.validate_every), 1)
        validated = (epoch + 1) % every == 0 or epoch + 1 == settings.epochs
        nan = float("nan")
        thr, f2, prec, rec = nan, nan, nan, nan
        if validated:
            thr, counts = validate(
                model, priors, epoch_fields, detect, settings.thresholds, settings.iou_threshold
            )
            f2, prec, rec = counts.f2, counts.precision, counts.recall
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
        improved = validated and f2 > state["best_f2"] + 1e-12
        if improved:
            with atomic_path(best_path) as tmp:
                model.save_weights(str(tmp))
            state.update(best_f2=f2, best_threshold=thr, best_epoch=epoch + 1, wait=0)
        elif validated:
            state["wait"] += every  # epochs since the last better F2
        epoch_var.assign(epoch + 1)
        state["checkpoint"] = manager.save(checkpoint_number=epoch + 1)
        state["epoch"] = epoch + 1
        state["history"].append(row)
        _write_json(state_path, state)
        log.info(
            "epoch %d: loss %.4f  val F2 %.3f (P %.3f R %.3f at %.2f)  %.1f img/s%s",
            epoch + 1,
            row["loss"],
            f2,
            prec,
            rec,
            thr,
            row["images_per_s"],
            "  *" if improved else "" if validated else "  (not validated)",
        )
        stopped = state["wait"] >= settings.patience
        if stopped:
            log.info("early stopping: no F2 improvement in %d epochs", settings.patience)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)

    if best_path.exists():
        model.load_weights(str(best_path))
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


def epoch_learning_rate(settings: TrainSettings, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based): ``learning_rate`` throughout, or with
    ``lr_schedule`` "cosine" a half cosine from it at the first epoch down to
    ``lr_min_fraction`` of it at the last (set at each epoch start: a resumed run continues
    the same schedule)."""
    lr = float(settings.learning_rate)
    if settings.lr_schedule == "constant":
        return lr
    if settings.lr_schedule != "cosine":
        raise ValueError(
            f"config: bubbles.train.lr_schedule is {settings.lr_schedule!r} (constant or cosine)"
        )
    t = epoch / max(int(settings.epochs) - 1, 1)
    f = float(settings.lr_min_fraction)
    return lr * (f + (1.0 - f) * 0.5 * (1.0 + np.cos(np.pi * min(t, 1.0))))


def write_history(rows: list[dict], path: str | Path) -> None:
    """History rows as CSV (atomic)."""
    with atomic_path(path) as tmp:
        if rows:
            Table(rows=[list(r.values()) for r in rows], names=list(rows[0])).write(
                tmp, format="ascii.csv", overwrite=True
            )
        else:
            tmp.write_text("epoch\n")


def code_key() -> str:
    """Library version + hash of the training code: a checkpoint of other code is not resumed."""
    h = hashlib.sha256(skydetect.__version__.encode())
    modules = (crops_module, train_data_module, validation_module)
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
