"""Acoustic layouts: which codes one AR step predicts and how steps map back to frames.

Shape legend: B batch, T frames, Q codebooks, N steps.

VALL-E's AR predicts the first codebook, one frame per step (Sec 4.2.1). VALL-E 2's grouped
code modeling is another layout (G frames per step) with its own embedding and head.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

__all__ = ["AcousticLayout", "FirstCodebookLayout", "LAYOUTS"]


class AcousticLayout(Protocol):
    frames_per_step: int

    def to_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """Frames (B, T, Q) with valid lengths (B,) -> AR step tokens (B, N) and lengths (B,)."""
        ...

    def from_steps(self, steps: Tensor) -> Tensor:
        """One item's step tokens (N,) -> the frames' codes it fixes (T, Q_ar)."""
        ...


class FirstCodebookLayout:
    """One step = the first-codebook code of one frame."""

    frames_per_step = 1

    def to_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        if codes.dim() != 3:
            raise ValueError(f"expected codes (B, T, Q), got shape {tuple(codes.shape)}")
        return codes[..., 0], lens  # (B, T)

    def from_steps(self, steps: Tensor) -> Tensor:
        return steps.unsqueeze(-1)  # (T, 1)


LAYOUTS: dict[str, type] = {"first_codebook": FirstCodebookLayout}
