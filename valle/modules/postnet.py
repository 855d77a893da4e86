"""Convolutional post-net: refines a whole predicted mel spectrogram with a residual.

Shape legend: B batch, T frames, F mel bins, C channels.

MELLE (Meng et al. 2024, arXiv 2407.08551, Sec 3.2) follows Tacotron 2's post-net: five 1-D
convolution blocks (kernel 5, 256 channels) over the AR's frames ``y'``, whose output is added
back: ``y'' = y' + PostNet(y')``. Here each block is conv -> LayerNorm over channels -> tanh ->
dropout (the last: conv -> dropout); LayerNorm instead of Tacotron's BatchNorm so that a row's
output never depends on its batch neighbours or its padding (padded frames are zeroed before
every convolution).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from valle.config import opt

__all__ = ["PostNet", "PostNetConfig"]


class PostNet(nn.Module):
    """``(B, T, F)`` frames and their ``(B, T)`` validity mask -> refined ``(B, T, F)``."""

    def __init__(
        self,
        n_mels: int,
        channels: int = 256,
        kernel_size: int = 5,
        num_layers: int = 5,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"a post-net needs >= 2 layers, got {num_layers}")
        if kernel_size % 2 == 0:
            raise ValueError(f"post-net kernel_size must be odd (same length), got {kernel_size}")
        dims = [n_mels] + [channels] * (num_layers - 1) + [n_mels]
        pad = kernel_size // 2
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, kernel_size, padding=pad) for a, b in zip(dims, dims[1:], strict=False)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(b) for b in dims[1:-1])
        self.dropout = nn.Dropout(dropout)

    def forward(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        keep = None if mask is None else mask[..., None].to(frames.dtype)  # (B, T, 1)
        x = frames
        for i, conv in enumerate(self.convs):
            if keep is not None:
                x = x * keep
            x = conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
            if i < len(self.norms):
                x = torch.tanh(self.norms[i](x))
            x = self.dropout(x)
        out = frames + x  # (B, T, F)
        return out if keep is None else out * keep


@dataclass(frozen=True)
class PostNetConfig:
    """Post-net size (MELLE Sec 3.2 / Tacotron 2: 5 convolutions, kernel 5, 256 channels)."""

    channels: int = opt(256, "channels of the hidden convolutions (count)")
    kernel_size: int = opt(5, "convolution kernel (frames, odd)")
    layers: int = opt(5, "convolution blocks (count, >= 2)")
    dropout: float = opt(0.5, "dropout after each block in training, in [0, 1)")

    def build(self, n_mels: int) -> PostNet:
        return PostNet(n_mels, self.channels, self.kernel_size, self.layers, self.dropout)
