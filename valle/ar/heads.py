"""AR output heads; a head owns its loss.

Shape legend: B batch, N steps, D model width, V classes, ``*E`` the layout's step shape
(``()`` for one code per step, ``(G,)`` for VALL-E 2's groups).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from valle.modules.metrics import masked_token_loss

__all__ = ["CategoricalHead", "HEADS"]


class CategoricalHead(nn.Module):
    """Logits over ``codebook_size + 1`` classes (the codes plus EOS) for every element of a
    step; cross entropy loss. With ``step_shape=(G,)`` it is VALL-E 2's group prediction layer."""

    def __init__(self, d_model: int, num_classes: int, step_shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.step_shape = tuple(step_shape)
        self.proj = nn.Linear(d_model, math.prod(self.step_shape) * num_classes)

    def forward(self, h: Tensor) -> Tensor:
        """(..., D) -> (..., *E, V)."""
        return self.proj(h).unflatten(-1, (*self.step_shape, self.num_classes))

    def loss(
        self, logits: Tensor, targets: Tensor, mask: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """CE over the valid audio targets (B, N, *E); metrics ``loss``, ``acc``, ``top10_acc``."""
        return masked_token_loss(logits, targets, mask)


HEADS: dict[str, type] = {"categorical": CategoricalHead}
