"""A stack of residual 1-D convolutions over frames: local context before a transformer.

Shape legend: B batch, L frames, D channels.

A transformer learns from data which frames are near; a small one trained for minutes on a
CPU does not get there (issue 9: the mini NAR). FastSpeech (Ren et al. 2019, Sec 3.1) puts
1-D convolutions into its feed-forward blocks for that reason. This stack gives a decoder's
frame inputs the same local view before its transformer: each block is pre-norm, a
``kernel``-wide convolution (same padding) and GELU, added back. Padded frames are zeroed
before every convolution, so they never leak into the valid ones.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["LocalConvStack"]


class LocalConvStack(nn.Module):
    """``layers`` residual blocks ``x + GELU(conv(norm(x)))`` over (B, L, D) frames."""

    def __init__(self, d_model: int, layers: int, kernel_size: int) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"a local conv stack needs >= 1 layer, got {layers}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1 (same padding), got {kernel_size}")
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(layers))
        self.convs = nn.ModuleList(
            nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2)
            for _ in range(layers)
        )

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """Frames (B, L, D) with ``lens`` (B,) valid each -> (B, L, D); padding stays as given."""
        if x.shape[1] == 0:
            return x
        valid = (torch.arange(x.shape[1], device=x.device) < lens[:, None])[..., None]  # (B, L, 1)
        out = x
        for norm, conv in zip(self.norms, self.convs, strict=True):
            h = norm(out).masked_fill(~valid, 0.0).transpose(1, 2)  # (B, D, L)
            out = out + F.gelu(conv(h)).transpose(1, 2).masked_fill(~valid, 0.0)
        return torch.where(valid, out, x)
