"""A NAR whose acoustic inputs carry a language id (VALL-E X).

Shape legend: B batch, S text tokens, P prompt frames, T target frames, Q codebooks,
D model width.

VALL-E X (arXiv 2303.03926, Sec 3, language ID) adds the language embedding to the acoustic
token embeddings of the NAR too. :class:`LanguageNARDecoder` passes a
:class:`~valle.modules.language.LanguageEmbedding` as the NAR's ``audio_conditioner``: the
prompt's frames get the prompt language, the target frames the target language (one
utterance in training: its ``language`` on both; a zero-shot call: the call's ids, Sec 4).
The text side, when configured, is the ``text_conditioner``
(:class:`~valle.modules.language.TextLanguageConditioner`) reading per-token ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from valle.ar.generate import Sampler
from valle.data.batch import SynthesisInputs
from valle.modules.language import LanguageIds, as_language_ids
from valle.nar.decoder import NARDecoder

__all__ = ["LanguageNARDecoder"]


class LanguageNARDecoder(NARDecoder):
    """:class:`NARDecoder` with language ids: ``audio_conditioner`` a
    :class:`LanguageEmbedding` (acoustic side) or None (text side only)."""

    def forward(  # type: ignore[override]
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        target_codes: Tensor,
        target_lens: Tensor,
        stage: int,
        language: LanguageIds | Tensor | None = None,
        audio_cond: LanguageIds | None = None,
    ) -> Tensor:
        """:meth:`NARDecoder.forward` where ``language`` (or ``audio_cond``, which
        :meth:`generate` uses to pass them) holds the :class:`LanguageIds`."""
        ids = audio_cond if isinstance(audio_cond, LanguageIds) else None
        ids = ids or as_language_ids(language, text_tokens)
        P, T = prompt_codes.shape[1], target_codes.shape[1]
        cond = None
        if self.audio_conditioner is not None:
            # columns [prompt (P) ; target (T)]: prompt_lens (B,) valid prompt columns
            prompt_cols = prompt_lens.clamp(max=P)
            cond = torch.cat(
                [ids.audio(prompt_cols, P), ids.target[:, None].expand(-1, T)], dim=1
            )  # (B, P + T)
        return super().forward(
            text_tokens, text_lens, prompt_codes, prompt_lens, target_codes, target_lens,
            stage, ids, cond,  # type: ignore[arg-type]
        )  # fmt: skip

    def batch_language(self, batch: Mapping[str, Any]) -> LanguageIds:
        """The batch's language ids per text token (what :meth:`forward` reads)."""
        return LanguageIds.from_batch(batch)

    @torch.no_grad()
    def generate(  # type: ignore[override]
        self,
        inputs: SynthesisInputs,
        first_codes: Tensor,
        lens: Tensor,
        *,
        sampler: Sampler | None = None,
        generator: torch.Generator | None = None,
        language: LanguageIds | None = None,
    ) -> Tensor:
        """:meth:`NARDecoder.generate` with the call's :class:`LanguageIds` (None: from
        ``inputs.language``); the text ids follow the text the prompt policy keeps."""
        ids = language or LanguageIds.for_synthesis(
            inputs.text_tokens, language=inputs.language, prompt_text_lens=inputs.prompt_text_lens
        )
        x = self.prompt.inference_inputs(inputs)  # raises when it needs prompt_text_lens
        if not self.prompt.text_includes_prompt and inputs.prompt_text_lens is not None:
            ids = ids.drop_text_prefix(inputs.prompt_text_lens, inputs.text_lens)
        # the base applies the policy again: a no-op on inputs it already shaped
        return super().generate(
            x,
            first_codes,
            lens,
            sampler=sampler,
            generator=generator,
            audio_cond=ids,  # type: ignore[arg-type]
        )
