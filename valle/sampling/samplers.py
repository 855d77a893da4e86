"""Token samplers: greedy and sampling from a filtered distribution.

Shape legend: B batch, V vocabulary, t steps decoded so far.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from valle.sampling.base import LogitFilter, check_history, check_logits


def draw(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """One sample per row from ``softmax(logits)`` (B, V) -> (B,) long, using ``generator``
    (which must live on ``logits.device``). Tokens with logit ``-inf`` are never drawn."""
    probs = torch.softmax(logits.float(), dim=-1)  # (B, V)
    if generator is not None and generator.device != probs.device:
        raise ValueError(
            f"the generator is on {generator.device} but the logits are on {probs.device}; "
            f"create it with torch.Generator(device={str(probs.device)!r})"
        )
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


class Greedy:
    """Arg-max decoding (ties -> the lowest id); ignores history and generator."""

    def __call__(
        self, logits: Tensor, history: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        check_logits(logits)
        check_history(history, logits.shape[0])
        return logits.argmax(dim=-1)  # (B,)

    def __repr__(self) -> str:
        return "Greedy()"


class FilteredSampler:
    """Apply ``filters`` in order, then draw from the softmax of what is left.

    ``FilteredSampler([])`` is plain random sampling from the model's distribution;
    ``FilteredSampler([Temperature(0.8), TopP(0.9)])`` is tempered nucleus sampling.
    """

    def __init__(self, filters: Sequence[LogitFilter] = ()) -> None:
        filters = tuple(filters)
        for f in filters:
            if not callable(f):
                raise TypeError(f"filters must be callables logits -> logits, got {f!r}")
        self.filters = filters

    def filter(self, logits: Tensor) -> Tensor:
        """The filtered logits (B, V) this sampler draws from."""
        for f in self.filters:
            logits = f(logits)
        return logits

    def __call__(
        self, logits: Tensor, history: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        check_logits(logits)
        check_history(history, logits.shape[0])
        return draw(self.filter(logits), generator)  # (B,)

    def __repr__(self) -> str:
        return f"FilteredSampler({list(self.filters)!r})"
