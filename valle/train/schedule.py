"""Learning-rate schedule: linear warmup, then a decay (multiplier on the peak lr per step).

VALL-E (Wang et al., 2023, section 5.1) warms the lr up over the first 32k updates to a peak of
5e-4 and then decays it linearly; other members of the family use cosine or inverse-sqrt decay.
All four shapes are available here and chosen by ``TrainConfig.decay``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from valle.train.config import DECAYS, TrainConfig


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    """The factor applied to ``cfg.lr`` for the update made at optimizer step ``step`` (0-based).

    Warmup: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` updates (never 0, so
    the first update moves the weights). After warmup, ``cfg.decay`` selects the shape.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    warm = cfg.warmup_steps
    if warm > 0 and step < warm:
        return (step + 1) / warm
    floor = cfg.min_lr_ratio
    span = max(1, cfg.max_steps - warm)
    progress = min(1.0, (step - warm) / span)
    if cfg.decay == "constant":
        return 1.0
    if cfg.decay == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.decay == "linear":
        return floor + (1.0 - floor) * (1.0 - progress)
    if cfg.decay == "inverse_sqrt":
        return math.sqrt(max(1, warm) / max(1, step + 1)) if warm > 0 else 1.0 / math.sqrt(step + 1)
    raise ValueError(f"unknown decay {cfg.decay!r}; use one of {DECAYS}")


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """A ``torch.optim.lr_scheduler.LambdaLR`` function for ``cfg`` (stepped once per update)."""

    def fn(step: int) -> float:
        return lr_multiplier(step, cfg)

    return fn
