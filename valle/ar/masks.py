"""Attention-mask policies for the AR decoder over ``[text ; audio]``.

Shape legend: B batch, L query positions, K key positions.

A policy maps query and key descriptors (:class:`~valle.modules.positions.SegmentPositions`)
to a (B, L, K) bool mask, True where the query may attend. It looks at segment ids and
in-segment indices only, never at columns, so the same policy serves full teacher-forced
passes and single KV-cached decoding steps. Padding keys are removed by :func:`attention_mask`.
RALL-E's duration-guided mask is another policy of this kind: it reads the queries' aligned
phoneme (``query.align``) and the text keys' index (their phoneme index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from torch import Tensor

from valle.config import ComponentConfig, opt, register_kind
from valle.modules.positions import AUDIO, TEXT, SegmentPositions

__all__ = [
    "CausalMask",
    "CausalMaskConfig",
    "MaskConfig",
    "MaskPolicy",
    "PrefixLMMask",
    "PrefixMaskConfig",
    "attention_mask",
]


class MaskPolicy(Protocol):
    def __call__(self, query: SegmentPositions, key: SegmentPositions) -> Tensor:
        """(B, L, K) bool: may query l attend to key k (before padding is removed)."""
        ...


def _pairs(query: SegmentPositions, key: SegmentPositions) -> tuple[Tensor, ...]:
    q_text = (query.segment == TEXT)[:, :, None]  # (B, L, 1)
    q_audio = (query.segment == AUDIO)[:, :, None]
    k_text = (key.segment == TEXT)[:, None, :]  # (B, 1, K)
    k_audio = (key.segment == AUDIO)[:, None, :]
    k_not_after = key.index[:, None, :] <= query.index[:, :, None]  # (B, L, K)
    return q_text, q_audio, k_text, k_audio, k_not_after


class PrefixLMMask:
    """VALL-E's AR mask (Sec 4.2.1): text sees all text; audio sees all text and earlier audio."""

    def __call__(self, query: SegmentPositions, key: SegmentPositions) -> Tensor:
        q_text, q_audio, k_text, k_audio, k_not_after = _pairs(query, key)
        return (q_text & k_text) | (q_audio & (k_text | (k_audio & k_not_after)))


class CausalMask:
    """Plain causal LM over ``[text ; audio]``: text sees earlier text only."""

    def __call__(self, query: SegmentPositions, key: SegmentPositions) -> Tensor:
        q_text, q_audio, k_text, k_audio, k_not_after = _pairs(query, key)
        return (q_text & k_text & k_not_after) | (q_audio & (k_text | (k_audio & k_not_after)))


def attention_mask(policy: MaskPolicy, query: SegmentPositions, key: SegmentPositions) -> Tensor:
    """Policy mask with padding keys removed: (B, L, K) bool."""
    return policy(query, key) & key.valid[:, None, :]


@dataclass(frozen=True)
class MaskConfig(ComponentConfig):
    """An AR mask policy's settings, chosen by ``kind`` (prefix | causal)."""

    __kinds__: ClassVar[dict[str, type]] = {}

    def build(self) -> MaskPolicy:
        raise NotImplementedError


@register_kind("prefix")
@dataclass(frozen=True)
class PrefixMaskConfig(MaskConfig):
    """:class:`PrefixLMMask` (VALL-E)."""

    kind: str = opt("prefix", "attention-mask policy: prefix | causal")

    def build(self) -> MaskPolicy:
        return PrefixLMMask()


@register_kind("causal")
@dataclass(frozen=True)
class CausalMaskConfig(MaskConfig):
    """:class:`CausalMask`."""

    kind: str = opt("causal", "attention-mask policy: prefix | causal")

    def build(self) -> MaskPolicy:
        return CausalMask()
