"""Training hyper-parameters of the bubble SSD and its per-epoch learning rate."""

from __future__ import annotations

from dataclasses import dataclass

from skydetect import schedule
from skydetect.schema import copied_default, schema_defaults

_TRAIN, _SSD = schema_defaults("bubbles.train"), schema_defaults("bubbles.ssd")
_EVALUATE = schema_defaults("bubbles.evaluate")


@dataclass
class TrainSettings:
    """Training hyper-parameters (``bubbles.train`` + loss/matching from ``bubbles.ssd`` and
    ``bubbles.evaluate``); the defaults are the schema's."""

    epochs: int = _TRAIN["epochs"]
    patience: int = _TRAIN["patience"]
    batch_bubbles: int = _TRAIN["batch_bubbles"]
    batch_negatives: int = _TRAIN["batch_negatives"]
    crop_repeats: int = _TRAIN["crop_repeats"]  # augmented crops of every bubble per epoch
    validate_every: int = _TRAIN["validate_every"]  # validation F2 every this many epochs
    learning_rate: float = _TRAIN["learning_rate"]
    lr_schedule: str = _TRAIN["lr_schedule"]  # or "cosine": per-epoch decay to lr_min_fraction
    lr_min_fraction: float = _TRAIN["lr_min_fraction"]
    weight_decay: float = _TRAIN["weight_decay"]
    clipnorm: float = _TRAIN["clipnorm"]
    iou_match: float = _SSD["iou_match"]
    neg_pos_ratio: float = _SSD["neg_pos_ratio"]
    min_negatives: int = _SSD["min_negatives"]
    min_cover: float = _EVALUATE["min_cover"]  # "don't care" cover of the unclear bubbles
    iou_threshold: float = _EVALUATE["iou_threshold"]  # the validation F2's one-to-one matching
    validation_background_windows: int | None = _TRAIN["validation_background_windows"]
    mixed_precision: bool | str = _TRAIN["mixed_precision"]  # "auto": float16 on a GPU only
    thresholds: list = copied_default(_TRAIN, "thresholds")

    @classmethod
    def from_config(cls, train: dict, ssd: dict | None = None, **override) -> TrainSettings:
        merged = {**(ssd or {}), **train, **override}
        return cls(**{k: merged[k] for k in cls.__dataclass_fields__ if k in merged})


def epoch_learning_rate(settings: TrainSettings, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based): :func:`skydetect.schedule.epoch_learning_rate`
    of ``learning_rate`` with ``lr_schedule`` and ``lr_min_fraction``."""
    return schedule.epoch_learning_rate(
        settings.learning_rate, settings.lr_schedule, epoch, settings.epochs,
        settings.lr_min_fraction, key="bubbles.train.lr_schedule",
    )  # fmt: skip
