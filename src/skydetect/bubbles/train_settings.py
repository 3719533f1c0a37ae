"""Training hyper-parameters of the bubble SSD and its per-epoch learning rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
