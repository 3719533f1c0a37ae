"""Training hyper-parameters of the bubble SSD and its per-epoch learning rate."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
