"""The codec contract every acoustic tokenizer in valle follows.

Shape legend: N samples, C channels, T frames, Q codebooks, B batch.

A codec turns a mono waveform at ``sample_rate`` into discrete codes ``(T, Q)`` at
``frame_rate`` frames per second, ``Q = num_codebooks`` codes per frame, each in
``[0, codebook_size)``, and back. Codec facts are read from the codec object, never from
constants elsewhere in the toolkit (DESIGN.md, section 2).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Codec(Protocol):
    """Discrete acoustic tokenizer: wave <-> codes."""

    @property
    def sample_rate(self) -> int:
        """Sample rate (Hz) of the waves ``encode`` takes and ``decode`` returns."""
        ...

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        ...

    @property
    def num_codebooks(self) -> int:
        """Q, codes per frame."""
        ...

    @property
    def codebook_size(self) -> int:
        """Number of entries in each codebook; codes lie in ``[0, codebook_size)``."""
        ...

    def encode(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encode a batch of mono waves.

        Args:
            wavs: list of B float tensors ``(N_b,)`` at ``sample_rate``, any lengths.
        Returns:
            list of B long tensors ``(T_b, Q)``; ``T_b = ceil(N_b * frame_rate / sample_rate)``
            up to the codec's own rounding, unaffected by the other items' lengths.
        """
        ...

    def decode(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """Decode a batch of code sequences.

        Args:
            codes: list of B long tensors ``(T_b, Q')`` with ``Q' <= Q`` (the first Q' codebooks).
        Returns:
            list of B float tensors ``(N_b,)`` at ``sample_rate``.
        """
        ...
