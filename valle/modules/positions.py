"""Per-position descriptors of a packed sequence of segments (text, audio, ...).

Shape legend: B batch, L sequence positions.

Models pack several segments side by side, each right-padded: ``[text (S) ; audio (T)]``.
A :class:`SegmentPositions` says, for every column, which segment it belongs to, its index
inside that segment (what positional encodings and attention-mask policies look at) and
whether it holds a real token. Rows with different lengths then need no left-padding: the
mask policies work on indices, never on columns, so a batch computes exactly what each
item would compute alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

TEXT = 0
AUDIO = 1
CONDITION = 2  # prepended condition tokens (e.g. VALL-E 2's NAR code-ID token)


@dataclass(frozen=True)
class SegmentPositions:
    """Descriptors of L columns of a packed batch."""

    segment: Tensor  # (B, L) long: TEXT, AUDIO, CONDITION (variants may add ids)
    index: Tensor  # (B, L) long: position inside the segment
    valid: Tensor  # (B, L) bool: a real token, not padding

    @staticmethod
    def span(
        segment: int, lens: Tensor, length: int, start: Tensor | None = None
    ) -> SegmentPositions:
        """Columns ``0..length-1`` of one right-padded segment; row b holds ``lens[b]`` tokens.

        ``start`` (B,) offsets the indices (a continuation of an earlier span).
        """
        B = lens.shape[0]
        idx = torch.arange(length, device=lens.device).expand(B, length)  # (B, L)
        valid = idx < lens[:, None]
        index = idx if start is None else idx + start[:, None]
        seg = torch.full((B, length), segment, dtype=torch.long, device=lens.device)
        return SegmentPositions(seg, index, valid)

    def cat(self, other: SegmentPositions) -> SegmentPositions:
        """Columns of ``self`` followed by the columns of ``other``."""
        return SegmentPositions(
            torch.cat([self.segment, other.segment], dim=1),
            torch.cat([self.index, other.index], dim=1),
            torch.cat([self.valid, other.valid], dim=1),
        )

    def __len__(self) -> int:
        return self.segment.shape[1]
