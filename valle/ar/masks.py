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

from valle.config import ComponentConfig, ConfigError, opt, register_kind
from valle.modules.positions import AUDIO, NO_ALIGN, PROSODY, TEXT, SegmentPositions

__all__ = [
    "CausalMask",
    "CausalMaskConfig",
    "DurationGuidedMask",
    "DurationGuidedMaskConfig",
    "MaskConfig",
    "MaskPolicy",
    "PrefixLMMask",
    "PrefixMaskConfig",
    "ProsodyPrefixMask",
    "ProsodyPrefixMaskConfig",
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


class ProsodyPrefixMask:
    """The prefix LM over ``[text ; prosody ; audio]`` (RALL-E without its masking).

    Text sees all text; a prosody position sees all text and the prosody positions up to its
    own (the chain of thought is decoded left to right); audio sees all text, all prosody and
    the audio up to its own position. The RALL-E ablation "without duration-guided masking".
    """

    def __call__(self, query: SegmentPositions, key: SegmentPositions) -> Tensor:
        q_text, q_audio, k_text, k_audio, k_not_after = _pairs(query, key)
        q_pros = (query.segment == PROSODY)[:, :, None]  # (B, L, 1)
        k_pros = (key.segment == PROSODY)[:, None, :]  # (B, 1, K)
        return (
            (q_text & k_text)
            | (q_pros & (k_text | (k_pros & k_not_after)))
            | (q_audio & (k_text | k_pros | (k_audio & k_not_after)))
        )


class DurationGuidedMask(ProsodyPrefixMask):
    """RALL-E's duration-guided masking (Sec 3.3): a speech token attends only to the
    phonemes and prosody tokens within ``window`` (the paper's k, 1 by default) of its
    aligned phoneme, and to the speech tokens up to its own.

    An audio query's aligned phoneme is ``query.align`` (from the durations: ground truth in
    training, predicted or forced at inference); a text or prosody key's phoneme is its
    ``index``. Text and prosody queries keep :class:`ProsodyPrefixMask`'s rule, and so does
    an audio query without an alignment (``NO_ALIGN``, e.g. the frames of a prompt whose
    transcript is unknown).
    """

    def __init__(self, window: int = 1) -> None:
        if window < 0:
            raise ValueError(f"the duration-guided window k must be >= 0, got {window}")
        self.window = window

    def __call__(self, query: SegmentPositions, key: SegmentPositions) -> Tensor:
        allowed = super().__call__(query, key)  # (B, L, K)
        align = query.aligned()[:, :, None]  # (B, L, 1)
        q_aligned = ((query.segment == AUDIO) & (query.aligned() != NO_ALIGN))[:, :, None]
        k_phoneme = ((key.segment == TEXT) | (key.segment == PROSODY))[:, None, :]  # (B, 1, K)
        near = (key.index[:, None, :] - align).abs() <= self.window  # (B, L, K)
        return allowed & ~(q_aligned & k_phoneme & ~near)


def attention_mask(policy: MaskPolicy, query: SegmentPositions, key: SegmentPositions) -> Tensor:
    """Policy mask with padding keys removed: (B, L, K) bool."""
    return policy(query, key) & key.valid[:, None, :]


@dataclass(frozen=True)
class MaskConfig(ComponentConfig):
    """An AR mask policy's settings, chosen by ``kind`` (prefix | causal | prosody_prefix |
    duration_guided).

    What the policy needs from the sequence it masks, which the variants read instead of
    asking for its kind: ``reads_prosody`` (it orders prosody positions between text and
    audio: the AR must make a prosody chain of thought) and ``reads_durations`` (it reads
    each audio query's aligned phoneme: the AR must have phoneme durations)."""

    __kinds__: ClassVar[dict[str, type]] = {}
    reads_prosody: ClassVar[bool] = False
    reads_durations: ClassVar[bool] = False

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


@register_kind("prosody_prefix")
@dataclass(frozen=True)
class ProsodyPrefixMaskConfig(MaskConfig):
    """:class:`ProsodyPrefixMask` (RALL-E's ablation without duration-guided masking)."""

    reads_prosody: ClassVar[bool] = True

    kind: str = opt(
        "prosody_prefix",
        "attention-mask policy: prefix | causal | prosody_prefix | duration_guided",
    )

    def build(self) -> MaskPolicy:
        return ProsodyPrefixMask()


@register_kind("duration_guided")
@dataclass(frozen=True)
class DurationGuidedMaskConfig(MaskConfig):
    """:class:`DurationGuidedMask` (RALL-E Sec 3.3)."""

    reads_prosody: ClassVar[bool] = True
    reads_durations: ClassVar[bool] = True

    kind: str = opt(
        "duration_guided",
        "attention-mask policy: prefix | causal | prosody_prefix | duration_guided",
    )
    window: int = opt(1, "k: phonemes on each side of the aligned one a speech token sees (>= 0)")

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ConfigError(f"mask.window must be >= 0, got {self.window}")

    def build(self) -> MaskPolicy:
        return DurationGuidedMask(self.window)
