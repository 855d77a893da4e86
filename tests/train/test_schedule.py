"""Learning-rate schedule shapes."""

from __future__ import annotations

import math

import pytest
import torch

from valle.train.config import TrainConfig
from valle.train.schedule import lr_lambda, lr_multiplier


def test_linear_warmup_reaches_peak():
    cfg = TrainConfig(warmup_steps=4, max_steps=20)
    assert [lr_multiplier(s, cfg) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_cosine_ends_at_floor_and_is_monotone():
    cfg = TrainConfig(warmup_steps=2, max_steps=12, decay="cosine", min_lr_ratio=0.1)
    values = [lr_multiplier(s, cfg) for s in range(2, 13)]
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    mid = lr_multiplier(7, cfg)  # halfway through the decay
    assert mid == pytest.approx(0.1 + 0.9 * 0.5)


def test_inverse_sqrt_and_constant():
    cfg = TrainConfig(warmup_steps=4, max_steps=100, decay="inverse_sqrt")
    assert lr_multiplier(15, cfg) == pytest.approx(math.sqrt(4 / 16))
    const = TrainConfig(warmup_steps=0, max_steps=10, decay="constant")
    assert lr_multiplier(0, const) == 1.0 and lr_multiplier(9, const) == 1.0


def test_linear_decay_and_past_the_end():
    cfg = TrainConfig(warmup_steps=0, max_steps=10, decay="linear")
    assert lr_multiplier(5, cfg) == pytest.approx(0.5)
    assert lr_multiplier(50, cfg) == pytest.approx(0.0)


def test_lambda_lr_steps_per_update():
    cfg = TrainConfig(lr=1.0, warmup_steps=2, max_steps=4, decay="linear")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.5, 1.0, 1.0, 0.5])
