"""Composable logit filters: temperature, top-k, top-p (nucleus).

Shape legend: B batch, V vocabulary.

Each filter maps logits ``(B, V) -> (B, V)`` per row; excluded tokens get ``-inf`` so a
softmax gives them probability exactly 0. Order matters and is the caller's choice, e.g.
``[Temperature(0.8), TopK(50), TopP(0.9)]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class Temperature:
    """Divide logits by ``t`` (> 0): ``t < 1`` sharpens, ``t > 1`` flattens; ``t -> 0``
    approaches :class:`~valle.sampling.samplers.Greedy` (use that for ``t = 0``)."""

    def __init__(self, t: float) -> None:
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise ValueError(
                f"temperature must be a finite number > 0, got {t!r}; use Greedy() for 0"
            )
        self.t = float(t)

    def __call__(self, logits: Tensor) -> Tensor:
        return logits / self.t

    def __repr__(self) -> str:
        return f"Temperature({self.t})"


class TopK:
    """Keep exactly the ``k`` highest logits of each row (ties broken by ``torch.topk``);
    ``k >= V`` keeps everything."""

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"top-k needs an integer k >= 1, got {k!r}")
        self.k = k

    def __call__(self, logits: Tensor) -> Tensor:
        if self.k >= logits.shape[-1]:
            return logits
        idx = logits.topk(self.k, dim=-1).indices  # (B, k)
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, idx, True)  # (B, V)
        return logits.masked_fill(~keep, float("-inf"))

    def __repr__(self) -> str:
        return f"TopK({self.k})"


class TopP:
    """Nucleus filter (Holtzman et al. 2020, Sec. 3.1): keep the smallest set of most probable
    tokens whose total probability reaches ``p``; the most probable token is always kept.

    A token is kept when the probability mass strictly above it (in sorted order) is < ``p``.
    ``p = 1`` keeps everything; ``p = 0`` keeps the most probable token alone (greedy; VALL-E 2
    tunes its top-p from 0.0 to 0.8, Sec 4).
    """

    def __init__(self, p: float) -> None:
        if not (isinstance(p, (int, float)) and 0 <= p <= 1):
            raise ValueError(f"top-p needs 0 <= p <= 1, got {p!r}")
        self.p = float(p)

    def __call__(self, logits: Tensor) -> Tensor:
        if self.p >= 1.0:
            return logits
        probs = torch.softmax(logits.float(), dim=-1)  # (B, V)
        sorted_probs, order = probs.sort(dim=-1, descending=True)  # (B, V)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # (B, V)
        keep_sorted = mass_before < self.p  # (B, V), column 0 always True
        keep_sorted[:, 0] = True
        keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)  # (B, V)
        return logits.masked_fill(~keep, float("-inf"))

    def __repr__(self) -> str:
        return f"TopP({self.p})"
