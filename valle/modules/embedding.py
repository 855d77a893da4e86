"""Token embeddings and sinusoidal positional encodings with a learned scale.

Shape legend: B batch, L sequence positions, D model width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalPositionalEncoding(nn.Module):
    """``x + alpha * PE(positions)`` followed by dropout; ``alpha`` is learned (VALL-E style).

    VALL-E keeps separate encodings for the text and the audio segment, each counting
    positions from 0 inside its own segment; positions are given per row (B, L), so rows
    with different lengths need no shifting.
    """

    inv_freq: Tensor

    def __init__(self, d_model: int, dropout: float = 0.0, base: float = 10000.0) -> None:
        super().__init__()
        if d_model % 2:
            raise ValueError(f"sinusoidal encoding needs an even d_model, got {d_model}")
        inv_freq = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(base) / d_model))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (D/2,)
        self.alpha = nn.Parameter(torch.ones(1))
        self.dropout = nn.Dropout(dropout)

    def encoding(self, positions: Tensor) -> Tensor:
        """Sinusoids for integer positions (B, L) -> (B, L, D)."""
        angle = positions.float().unsqueeze(-1) * self.inv_freq  # (B, L, D/2)
        return torch.cat([angle.sin(), angle.cos()], dim=-1)  # (B, L, D)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        return self.dropout(x + self.alpha * self.encoding(positions).to(x.dtype))


class TokenEmbedding(nn.Embedding):
    """``nn.Embedding`` with a clear error for out-of-range ids (a common data bug).

    The check runs for CPU tensors only (on an accelerator it would cost a device sync per
    call; models check a whole batch once instead, see ``Valle.loss``).
    """

    def forward(self, ids: Tensor) -> Tensor:
        if (
            ids.device.type == "cpu"
            and ids.numel()
            and (int(ids.min()) < 0 or int(ids.max()) >= self.num_embeddings)
        ):
            raise ValueError(
                f"token id out of range [0, {self.num_embeddings}): min {int(ids.min())}, "
                f"max {int(ids.max())}; check that the model's vocabulary facts (tokens.txt, "
                "codec codebook size) match the data"
            )
        return super().forward(ids)
