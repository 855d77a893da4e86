"""Language ids per token and the language embeddings that add them (VALL-E X).

Shape legend: B batch, S text tokens, L sequence positions, P prompt frames, T target
frames, D model width.

VALL-E X (Zhang et al. 2023, arXiv 2303.03926, the "language ID" part of Sec 3) embeds a language id
into a dense vector and adds it to the embeddings of the acoustic tokens, in the AR and the
NAR, so that the model picks the acoustic tokens (tones, accent) of the language it speaks.
Ids are per token so that a zero-shot call whose prompt and target are in different
languages (cross-lingual synthesis, Sec 4) describes each part with its own id:

* acoustic side: each acoustic token carries the language of the speech it codes, the
  prompt's tokens the prompt language, the generated tokens the target language; the AR's
  BOS takes the language of the speech that follows it (the prompt's, or the target's when
  there is no prompt). In training, prompt and target come from one utterance (or another
  utterance of the same speaker) and all carry the utterance's ``language``.
* text side: each phoneme carries the language its G2P read it in (``language_tokens`` of
  :class:`~valle.data.featurizers.LanguagePerToken`; at inference the prompt transcript's
  tokens the prompt language and the target text's the target language, or the per-token
  ids of a code-switched text).

Accent control (the paper's foreign-accent study): the target language id of the acoustic side is a
free choice at inference; the target text's own language gives native speech, another id
(e.g. the prompt's) the accent of that language.

:class:`LanguageIds` carries one call's ids; :class:`LanguageEmbedding` adds them;
:class:`TextLanguageConditioner` is the text-side component (the open VALL-E X port adds
its language embedding to the phoneme embeddings instead), the ``text_conditioner`` hook of
the AR and NAR decoders. :class:`LanguagePositions` tags audio positions with their ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from valle.config import ComponentConfig, ConfigError, opt, register_kind
from valle.data import batch as B_
from valle.modules.positions import SegmentPositions

__all__ = [
    "LANGUAGE_KINDS",
    "AcousticAndTextLanguageConfig",
    "AcousticLanguageConfig",
    "LanguageConfig",
    "LanguageEmbedding",
    "LanguageIds",
    "LanguagePositions",
    "TextLanguageConditioner",
    "TextLanguageConfig",
    "language_of_positions",
]


def _prefix_mask(lens: Tensor, width: int) -> Tensor:
    return torch.arange(width, device=lens.device) < lens[:, None]  # (B, width)


@dataclass(frozen=True, eq=False)
class LanguageIds:
    """The language ids of one batch or one synthesis call.

    Attributes:
        text: (B, S) long, language id of every text token (padding: any id).
        prompt: (B,) long, language of the acoustic prompt's speech.
        target: (B,) long, language of the speech to generate (accent control: any id).
    """

    text: Tensor
    prompt: Tensor
    target: Tensor

    @classmethod
    def from_batch(cls, batch: Mapping[str, Any]) -> LanguageIds:
        """A training batch: ``language_tokens`` (B, S) per text token when the batch has
        them (else the utterance's ``language`` on every token); prompt = target = the
        utterance's ``language``."""
        text = batch[B_.TEXT_TOKENS]
        lang = batch.get(B_.LANGUAGE)
        if lang is None:
            lang = torch.zeros(text.shape[0], dtype=torch.long, device=text.device)
        per_token = batch.get(B_.LANGUAGE_TOKENS)
        if per_token is None:
            per_token = lang[:, None].expand(-1, text.shape[1])
        elif per_token.shape != text.shape:
            raise ValueError(
                f"language_tokens {tuple(per_token.shape)} must match text_tokens "
                f"{tuple(text.shape)} (one language id per text token)"
            )
        return cls(per_token, lang, lang)

    @classmethod
    def for_synthesis(
        cls,
        text_tokens: Tensor,
        *,
        language: Tensor | None = None,
        prompt_language: Tensor | None = None,
        prompt_text_lens: Tensor | None = None,
        language_tokens: Tensor | None = None,
    ) -> LanguageIds:
        """A zero-shot call (VALL-E X Sec 4): ``language`` (B,) is the target speech's id
        (default 0), ``prompt_language`` (B,) the prompt's (default: ``language``).
        ``language_tokens`` (B, S) gives every text token's id (code-switched text); without
        it the first ``prompt_text_lens`` tokens (the prompt transcript) carry the prompt
        language and the rest the target language."""
        B, S = text_tokens.shape
        dev = text_tokens.device
        target = (
            torch.zeros(B, dtype=torch.long, device=dev) if language is None else language.long()
        )
        prompt = target if prompt_language is None else prompt_language.long()
        if language_tokens is not None:
            if language_tokens.shape != (B, S):
                raise ValueError(
                    f"language_tokens {tuple(language_tokens.shape)} must match text_tokens "
                    f"{(B, S)}"
                )
            text = language_tokens.long()
        elif prompt_text_lens is None:
            text = target[:, None].expand(B, S)
        else:
            text = torch.where(_prefix_mask(prompt_text_lens, S), prompt[:, None], target[:, None])
        return cls(text, prompt, target)

    def drop_text_prefix(self, prefix_lens: Tensor, text_lens: Tensor) -> LanguageIds:
        """The ids of the text without its first ``prefix_lens`` (B,) tokens (the prompt
        transcript), right-padded like :meth:`SynthesisInputs.target_text_only`."""
        rows = [
            self.text[b, int(p) : int(n)]
            for b, (p, n) in enumerate(zip(prefix_lens.tolist(), text_lens.tolist(), strict=True))
        ]
        text, _ = B_.pad_rows(rows, 0)  # (B, S')
        return LanguageIds(text, self.prompt, self.target)

    def audio(self, prompt_lens: Tensor, width: int) -> Tensor:
        """(B, width) ids of audio columns whose first ``prompt_lens`` (B,) hold the prompt's
        speech (prompt language) and the rest the target speech (target language)."""
        mask = _prefix_mask(prompt_lens, width)
        return torch.where(mask, self.prompt[:, None], self.target[:, None])  # (B, width)

    def row(self, b: int) -> LanguageIds:
        return LanguageIds(self.text[b : b + 1], self.prompt[b : b + 1], self.target[b : b + 1])


def as_language_ids(language: Any, text_tokens: Tensor) -> LanguageIds:
    """``language`` as :class:`LanguageIds`: itself, a (B,) tensor (one id per row for every
    token, as a monolingual call), or None (id 0)."""
    if isinstance(language, LanguageIds):
        return language
    if language is None or isinstance(language, Tensor):
        return LanguageIds.for_synthesis(text_tokens, language=language)
    raise TypeError(f"language must be LanguageIds, a (B,) tensor or None, got {type(language)}")


@dataclass(frozen=True)
class LanguagePositions(SegmentPositions):
    """Audio positions that also carry the language id of each position (B, L)."""

    language: Tensor | None = None

    @staticmethod
    def tag(pos: SegmentPositions, language: Tensor) -> LanguagePositions:
        if language.shape != pos.index.shape:
            raise ValueError(
                f"language ids {tuple(language.shape)} do not match the positions "
                f"{tuple(pos.index.shape)}"
            )
        return LanguagePositions(pos.segment, pos.index, pos.valid, pos.align, language)


def language_of_positions(pos: SegmentPositions) -> Tensor | None:
    """The language ids (B, L) a position descriptor carries, or None."""
    return getattr(pos, "language", None)


class LanguageEmbedding(nn.Module):
    """``x + E[ids]``: inputs (B, L, D) plus the embedding of each position's language id
    (B, L) (VALL-E X Sec 3, language ID: embeddings added to the token embeddings)."""

    def __init__(self, num_languages: int, d_model: int) -> None:
        super().__init__()
        if num_languages < 1:
            raise ValueError(f"num_languages must be >= 1, got {num_languages}")
        self.table = nn.Embedding(num_languages, d_model)

    @property
    def num_languages(self) -> int:
        return int(self.table.num_embeddings)

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        if ids.shape != x.shape[:2]:
            raise ValueError(f"language ids {tuple(ids.shape)} do not match inputs {x.shape[:2]}")
        if (
            ids.device.type == "cpu"
            and ids.numel()
            and (int(ids.min()) < 0 or int(ids.max()) >= self.num_languages)
        ):
            raise ValueError(
                f"language id out of range [0, {self.num_languages}): got "
                f"[{int(ids.min())}, {int(ids.max())}]; see valle.text.LANGUAGES"
            )
        return x + self.table(ids)  # (B, L, D)


class TextLanguageConditioner(nn.Module):
    """The text-side component: each phoneme embedding (B, S, D) plus the embedding of its
    own language id (``LanguageIds.text``); the ``text_conditioner`` of the decoders."""

    def __init__(self, num_languages: int, d_model: int) -> None:
        super().__init__()
        self.embedding = LanguageEmbedding(num_languages, d_model)

    def forward(self, x: Tensor, language: Any) -> Tensor:
        ids = as_language_ids(language, x.new_zeros(x.shape[:2], dtype=torch.long))
        return self.embedding(x, ids.text[:, : x.shape[1]])  # (B, S, D)


@dataclass(frozen=True)
class LanguageConfig(ComponentConfig):
    """Where the language embedding goes, chosen by ``kind`` (``language: {kind: acoustic}``):
    each kind names the component class of each side it conditions (None: that side not)."""

    __kinds__: ClassVar[dict[str, type]] = {}
    acoustic: ClassVar[type[LanguageEmbedding] | None] = None  # added to the acoustic inputs
    text: ClassVar[type[TextLanguageConditioner] | None] = None  # the decoders' text_conditioner
    num_languages: int = opt(3, "rows of each language table (count; valle.text.LANGUAGES ids)")

    def __post_init__(self) -> None:
        if self.num_languages < 1:
            raise ConfigError(f"language.num_languages must be >= 1, got {self.num_languages}")

    def audio_embedding(self, d_model: int) -> LanguageEmbedding | None:
        """The acoustic-side component, or None."""
        return None if self.acoustic is None else self.acoustic(self.num_languages, d_model)

    def text_conditioner(self, d_model: int) -> TextLanguageConditioner | None:
        """The text-side component, or None."""
        return None if self.text is None else self.text(self.num_languages, d_model)


_KIND_HELP = (
    "where the language id is added: acoustic (VALL-E X: the acoustic tokens' embeddings, AR "
    "and NAR) | text (the phoneme embeddings, per token, as the open VALL-E X port) | "
    "acoustic_and_text"
)


@register_kind("acoustic")
@dataclass(frozen=True)
class AcousticLanguageConfig(LanguageConfig):
    """VALL-E X Sec 3: the language embedding added to the acoustic tokens' embeddings."""

    kind: str = opt("acoustic", _KIND_HELP)
    acoustic = LanguageEmbedding


@register_kind("text")
@dataclass(frozen=True)
class TextLanguageConfig(LanguageConfig):
    """The language embedding added to each phoneme embedding (the open VALL-E X port)."""

    kind: str = opt("text", _KIND_HELP)
    text = TextLanguageConditioner


@register_kind("acoustic_and_text")
@dataclass(frozen=True)
class AcousticAndTextLanguageConfig(LanguageConfig):
    """Both sides, each with its own table."""

    kind: str = opt("acoustic_and_text", _KIND_HELP)
    acoustic = LanguageEmbedding
    text = TextLanguageConditioner


LANGUAGE_KINDS = tuple(LanguageConfig.__kinds__)
