"""Layer norms that may take a conditioning vector: plain LayerNorm and AdaLN.

Shape legend: B batch, L sequence positions, D model width.

Every norm in a :class:`~valle.modules.transformer.TransformerStack` is called as
``norm(x (B, L, D), cond (B, D) | None)`` so that a stage-conditioned stack (the VALL-E NAR)
and a plain one (the AR) share one layer implementation.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class LayerNorm(nn.Module):
    """``nn.LayerNorm`` that ignores the conditioning argument."""

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.norm(x)


class AdaptiveLayerNorm(nn.Module):
    """AdaLN: ``a * LayerNorm(h) + b`` with ``a, b`` projected from a condition (VALL-E Sec 4.2.2).

    In VALL-E the condition is the NAR stage embedding. ``a`` is parameterised as ``1 + a'``
    so that a fresh layer starts near a plain LayerNorm yet already depends on the stage.
    """

    def __init__(self, d_model: int, cond_dim: int | None = None, eps: float = 1e-5) -> None:
        super().__init__()
        self.d_model = d_model
        self.eps = eps
        self.proj = nn.Linear(cond_dim or d_model, 2 * d_model)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise ValueError("AdaptiveLayerNorm needs a condition (B, D); got None")
        h = F.layer_norm(x, (self.d_model,), eps=self.eps)  # (B, L, D)
        a, b = self.proj(cond).unsqueeze(1).chunk(2, dim=-1)  # (B, 1, D) each
        return (1.0 + a) * h + b
