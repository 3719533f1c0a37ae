"""Learning-rate schedules shared by the trainers (the cluster U-Net and the bubble SSD).

``constant``: the base rate in every epoch. ``cosine``: a half cosine from the base rate at
the first epoch down to ``min_fraction`` of it at the last, set per epoch from the epoch
number alone, so that a resumed run continues the same schedule. A fixed epoch budget then
ends on small steps: the last epochs settle instead of jumping between minima, and the
checkpoint chosen on validation is a settled model.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def epoch_learning_rate(base: float, schedule: str, epoch: int, epochs: int,
                        min_fraction: float, key: str = "lr_schedule") -> float:  # fmt: skip
    """Learning rate of epoch ``epoch`` (0-based) of ``epochs``; ``key`` names the config key
    in the error for an unknown ``schedule``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"config: {key} is {schedule!r} (one of {', '.join(SCHEDULES)})")
    lr = float(base)
    if schedule == "constant":
        return lr
    t = min(max(epoch, 0) / max(int(epochs) - 1, 1), 1.0)
    f = float(min_fraction)
    return lr * (f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * t)))
