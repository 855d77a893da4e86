"""Acoustic layouts: which codes one AR step predicts and how steps map back to frames.

Shape legend: B batch, T frames, Q codebooks, N steps, G frames per step, D model width,
``*E`` the step's element shape (``()`` for one code, ``(G,)`` for a group).

VALL-E's AR predicts the first codebook, one frame per step (Sec 4.2.1):
:class:`FirstCodebookLayout`. VALL-E 2's grouped code modeling (Sec 3.1) predicts G frames'
first-codebook codes per step: :class:`GroupedCodeLayout`, with a group embedding in (the G
code embeddings concatenated) and a grouped head out (:class:`~valle.ar.heads.GroupedHead`).
A layout owns the input embedding of its steps.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor, nn

from valle.modules.embedding import TokenEmbedding

__all__ = ["AcousticLayout", "FirstCodebookLayout", "GroupedCodeLayout", "LAYOUTS"]


class AcousticLayout(Protocol):
    frames_per_step: int
    step_shape: tuple[int, ...]

    def to_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Training targets: frames (B, T, Q) with lengths (B,) -> steps (B, N, *E), step
        lengths (B,) and a (B, N, *E) bool mask of the elements that are real frames."""
        ...

    def prompt_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """A prompt's whole steps only: (B, P, Q) -> steps (B, N, *E) and lengths (B,)."""
        ...

    def from_steps(self, steps: Tensor) -> Tensor:
        """One item's steps (N, *E) -> the codes they fix (N * G, Q_ar)."""
        ...

    def embedding(self, num_ids: int, d_model: int) -> nn.Module:
        """A module embedding step ids (B, N, *E) -> (B, N, D)."""
        ...


def _check_codes(codes: Tensor) -> None:
    if codes.dim() != 3:
        raise ValueError(f"expected codes (B, T, Q), got shape {tuple(codes.shape)}")


class FirstCodebookLayout:
    """One step = the first-codebook code of one frame."""

    frames_per_step = 1
    step_shape: tuple[int, ...] = ()

    def to_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        steps, lens = self.prompt_steps(codes, lens)
        valid = torch.arange(steps.shape[1], device=lens.device) < lens[:, None]  # (B, N)
        return steps, lens, valid

    def prompt_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        _check_codes(codes)
        return codes[..., 0], lens  # (B, T)

    def from_steps(self, steps: Tensor) -> Tensor:
        return steps.unsqueeze(-1)  # (T, 1)

    def embedding(self, num_ids: int, d_model: int) -> nn.Module:
        return TokenEmbedding(num_ids, d_model)


class GroupEmbedding(nn.Module):
    """G code embeddings of width D/G, concatenated: (B, N, G) -> (B, N, D)."""

    def __init__(self, num_ids: int, d_model: int, group: int) -> None:
        super().__init__()
        if d_model % group:
            raise ValueError(f"d_model={d_model} must be divisible by the group size {group}")
        self.codes = TokenEmbedding(num_ids, d_model // group)

    def forward(self, ids: Tensor) -> Tensor:
        e = self.codes(ids)  # (B, N, G, D/G)
        return e.flatten(-2)  # (B, N, D)


class GroupedCodeLayout:
    """One step = the first-codebook codes of G consecutive frames (VALL-E 2 Sec 3.1).

    Training pads the last group with code 0 and masks the padding out of the loss; a
    prompt keeps its whole groups only (the last partial group is dropped).
    """

    step_shape: tuple[int, ...]

    def __init__(self, group: int = 2) -> None:
        if group < 1:
            raise ValueError(f"group size must be >= 1, got {group}")
        self.frames_per_step = group
        self.step_shape = (group,)

    def _group(self, codes: Tensor, n: int) -> Tensor:
        G = self.frames_per_step
        first = codes[..., 0]  # (B, T)
        pad = n * G - first.shape[1]
        if pad > 0:
            first = torch.cat([first, first.new_zeros(first.shape[0], pad)], dim=1)
        return first[:, : n * G].reshape(first.shape[0], n, G)  # (B, N, G)

    def to_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _check_codes(codes)
        G = self.frames_per_step
        n = math.ceil(codes.shape[1] / G)
        frame = torch.arange(n * G, device=lens.device).view(1, n, G)
        valid = frame < lens[:, None, None]  # (B, N, G)
        return self._group(codes, n), (lens + G - 1) // G, valid

    def prompt_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        _check_codes(codes)
        G = self.frames_per_step
        return self._group(codes, codes.shape[1] // G), lens // G

    def from_steps(self, steps: Tensor) -> Tensor:
        return steps.reshape(-1, 1)  # (N * G, 1)

    def embedding(self, num_ids: int, d_model: int) -> nn.Module:
        return GroupEmbedding(num_ids, d_model, self.frames_per_step)


LAYOUTS: dict[str, type] = {"first_codebook": FirstCodebookLayout, "grouped": GroupedCodeLayout}
