"""An AR decoder whose acoustic inputs carry a language id (VALL-E X).

Shape legend: B batch, S text tokens, P prompt frames, N AR steps, D model width, ``*E`` the
layout's step shape.

VALL-E X (arXiv 2303.03926, Sec 3, language ID) adds a language embedding to the embeddings
of the acoustic tokens. :class:`LanguageARDecoder` is an :class:`~valle.ar.decoder.ARDecoder`
with an optional ``audio_language`` (:class:`~valle.modules.language.LanguageEmbedding`)
added to every audio input, and the decoders' ``text_conditioner`` for the text side. Which
id each input gets is :mod:`valle.modules.language`'s rule: in training the utterance's
language; in a zero-shot call the BOS and the prompt's steps get the prompt language and
every generated step the target language (cross-lingual inference, Sec 4).

The decoder's ``language`` argument is a :class:`~valle.modules.language.LanguageIds` (a
(B,) tensor still works: one language per row); :meth:`loss` builds it from the batch
(``language_tokens`` and ``language``), :meth:`generate` from the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from valle.ar.builders import build_ar_decoder
from valle.ar.config import ARConfig
from valle.ar.decoder import ARDecoder
from valle.ar.generate import DecodingOf, generate_ar
from valle.config import VocabConfig
from valle.data import batch as B_
from valle.modules.language import (
    LanguageEmbedding,
    LanguageIds,
    LanguagePositions,
    as_language_ids,
    language_of_positions,
)
from valle.modules.positions import SegmentPositions
from valle.modules.transformer import KVCache
from valle.sampling import TokenSampler

__all__ = ["LanguageARDecoder", "LanguageDecoding", "build_language_ar_decoder"]


class LanguageARDecoder(ARDecoder):
    """:class:`ARDecoder` + a language embedding on the acoustic inputs (``audio_language``;
    None: text side only, through ``text_conditioner``)."""

    def __init__(self, *, audio_language: LanguageEmbedding | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audio_language = audio_language

    def embed_audio(self, steps: Tensor, pos: SegmentPositions) -> Tensor:
        """Audio inputs (B, N, *E) + their language embedding at positions ``pos``."""
        x = self.audio_embedding(steps)  # (B, N, D)
        if self.audio_language is not None:
            ids = language_of_positions(pos)
            if ids is None:
                raise ValueError(
                    "this AR adds a language embedding to its acoustic inputs: their positions "
                    "must carry language ids (LanguagePositions; call generate, not step)"
                )
            x = self.audio_language(x, ids)
        return self.audio_position(x, pos.index)

    def hidden(  # type: ignore[override]
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: LanguageIds | Tensor | None = None,
        audio_pos: SegmentPositions | None = None,
    ) -> Tensor:
        """Teacher forcing: every audio input is the utterance's speech (``target``)."""
        ids = as_language_ids(language, text_tokens)
        if audio_pos is None:
            audio_pos = self.audio_positions(audio_lens, audio_in.shape[1])
        tagged = LanguagePositions.tag(audio_pos, ids.target[:, None].expand_as(audio_pos.index))
        return super().hidden(text_tokens, text_lens, audio_in, audio_lens, ids, tagged)  # type: ignore[arg-type]

    def prefill(  # type: ignore[override]
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: LanguageIds | Tensor | None = None,
        capacity: int = 0,
        audio_pos: SegmentPositions | None = None,
    ) -> tuple[Tensor, KVCache]:
        """``audio_in`` = [BOS, prompt steps]: all the prompt's speech, so all the prompt
        language; with no prompt the BOS starts the target speech (target language)."""
        ids = as_language_ids(language, text_tokens)
        if audio_pos is None:
            audio_pos = self.audio_positions(audio_lens, audio_in.shape[1])
        has_prompt = audio_lens > 1  # (B,) BOS + at least one prompt step
        lang = ids.prompt.where(has_prompt, ids.target)  # (B,)
        tagged = LanguagePositions.tag(audio_pos, lang[:, None].expand_as(audio_pos.index))
        return super().prefill(
            text_tokens,
            text_lens,
            audio_in,
            audio_lens,
            ids,  # type: ignore[arg-type]
            capacity,
            audio_pos=tagged,
        )

    def decoding(self, text_tokens: Tensor, language: Any = None) -> LanguageDecoding:
        """Incremental decoding whose steps carry the call's target language (None: id 0)."""
        return LanguageDecoding(self, as_language_ids(language, text_tokens))

    def loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """:meth:`ARDecoder.loss` with the batch's language ids per token."""
        return super().loss({**batch, B_.LANGUAGE: LanguageIds.from_batch(batch)})

    def generate(  # type: ignore[override]
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        *,
        language: LanguageIds | Tensor | None = None,
        sampler: TokenSampler | None = None,
        generator: Any = None,
        max_len_ratio: float | None = None,
    ) -> list[Tensor]:
        """:func:`~valle.ar.generate.generate_ar`, each generated step carrying the target
        language."""
        ids = as_language_ids(language, text_tokens)
        return generate_ar(
            self.decoding(text_tokens, ids),
            text_tokens,
            text_lens,
            prompt_codes,
            prompt_lens,
            language=ids,  # type: ignore[arg-type]
            sampler=sampler,
            generator=generator,
            max_len_ratio=max_len_ratio,
        )


class LanguageDecoding(DecodingOf):
    """The :class:`~valle.ar.generate.Decodable` of one generate call: every step it feeds
    is the target speech, so its position carries ``ids.target``."""

    def __init__(self, ar: LanguageARDecoder, ids: LanguageIds) -> None:
        super().__init__(ar)
        self.ids = ids

    def prefill(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Any = None,
        capacity: int = 0,
    ) -> tuple[Tensor, KVCache]:
        return self.ar.prefill(text_tokens, text_lens, audio_in, audio_lens, self.ids, capacity)

    def step(self, step_in: Tensor, pos: SegmentPositions, cache: KVCache) -> Tensor:
        tagged = LanguagePositions.tag(pos, self.ids.target[:, None].expand_as(pos.index))
        return self.ar.step(step_in, tagged, cache)


def build_language_ar_decoder(cfg: ARConfig, vocab: VocabConfig, **parts: Any) -> LanguageARDecoder:
    """:func:`~valle.ar.builders.build_ar_decoder` making a :class:`LanguageARDecoder`;
    ``parts``: ``audio_language``, ``text_conditioner``."""
    ar = build_ar_decoder(cfg, vocab, LanguageARDecoder, **parts)
    assert isinstance(ar, LanguageARDecoder)
    return ar
