"""The training step reaches a loss that schedules a term by it (MELLE's KL warm-up)."""

from __future__ import annotations

import torch

from valle.train.config import TrainConfig
from valle.train.module import TrainingModule


def test_the_global_step_reaches_a_loss_that_takes_it() -> None:
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ar = torch.nn.Linear(1, 1)

        def loss(self, batch, stages=("ar",), generator=None, *, step=None):
            seen.append(step)
            return self.ar.weight.sum(), {}

    TrainingModule(Probe(), TrainConfig(stages=["ar"]))._step({})
    assert seen == [0]  # the global step of a module not yet fitted


def test_a_loss_without_step_never_sees_it() -> None:
    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ar = torch.nn.Linear(1, 1)

        def loss(self, batch, stages=("ar",)):
            return self.ar.weight.sum(), {}

    loss, _ = TrainingModule(Plain(), TrainConfig(stages=["ar"]))._step({})
    assert torch.isfinite(loss)
