"""Per-position descriptors of a packed sequence of segments (text, audio, ...).

Shape legend: B batch, L sequence positions.

Models pack several segments side by side, each right-padded: ``[text (S) ; audio (T)]``.
A :class:`SegmentPositions` says, for every column, which segment it belongs to, its index
inside that segment (what positional encodings and attention-mask policies look at) and
whether it holds a real token. Rows with different lengths then need no left-padding: the
mask policies work on indices, never on columns, so a batch computes exactly what each
item would compute alone.

An audio position may also carry ``align``, the index of the phoneme it is aligned with
(RALL-E's durations, VALL-E R's phoneme pointer), so that a mask policy can depend on the
alignment (RALL-E's duration-guided mask). ``align`` describes *queries*: the KV cache keeps
the segment, index and validity of its keys only, so a policy reads ``query.align`` and the
keys' ``segment``/``index`` (a text or prosody key's index is its phoneme index).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

TEXT = 0
AUDIO = 1
CONDITION = 2  # prepended condition tokens (e.g. VALL-E 2's NAR code-ID token)
PROSODY = 3  # phoneme-level prosody tokens (RALL-E's pitch and duration, index = phoneme)
NO_ALIGN = -1  # ``align`` of a position that has no aligned phoneme


@dataclass(frozen=True)
class SegmentPositions:
    """Descriptors of L columns of a packed batch."""

    segment: Tensor  # (B, L) long: TEXT, AUDIO, CONDITION, PROSODY (variants may add ids)
    index: Tensor  # (B, L) long: position inside the segment
    valid: Tensor  # (B, L) bool: a real token, not padding
    align: Tensor | None = None  # (B, L) long: aligned phoneme index, NO_ALIGN where none

    @staticmethod
    def span(
        segment: int,
        lens: Tensor,
        length: int,
        start: Tensor | None = None,
        align: Tensor | None = None,
    ) -> SegmentPositions:
        """Columns ``0..length-1`` of one right-padded segment; row b holds ``lens[b]`` tokens.

        ``start`` (B,) offsets the indices (a continuation of an earlier span); ``align``
        (B, L) gives each position's aligned phoneme (optional).
        """
        B = lens.shape[0]
        idx = torch.arange(length, device=lens.device).expand(B, length)  # (B, L)
        valid = idx < lens[:, None]
        index = idx if start is None else idx + start[:, None]
        seg = torch.full((B, length), segment, dtype=torch.long, device=lens.device)
        if align is not None and align.shape != (B, length):
            raise ValueError(f"align must be (B, L) = {(B, length)}, got {tuple(align.shape)}")
        return SegmentPositions(seg, index, valid, align)

    def aligned(self) -> Tensor:
        """``align`` (B, L), or NO_ALIGN everywhere when the positions carry none."""
        if self.align is not None:
            return self.align
        return torch.full_like(self.index, NO_ALIGN)

    def cat(self, other: SegmentPositions) -> SegmentPositions:
        """Columns of ``self`` followed by the columns of ``other``."""
        align = None
        if self.align is not None or other.align is not None:
            align = torch.cat([self.aligned(), other.aligned()], dim=1)
        return SegmentPositions(
            torch.cat([self.segment, other.segment], dim=1),
            torch.cat([self.index, other.index], dim=1),
            torch.cat([self.valid, other.valid], dim=1),
            align,
        )

    def __len__(self) -> int:
        return self.segment.shape[1]
