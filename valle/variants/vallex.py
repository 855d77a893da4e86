"""VALL-E X (Zhang et al. 2023, arXiv 2303.03926): VALL-E plus language ids, cross-lingual.

Shape legend: B batch, S text tokens, P prompt frames, T frames, Q codebooks.

The wiring only. VALL-E X is VALL-E (:mod:`valle.variants.valle`) trained on several
languages with one more conditioner: a language-ID embedding added to the acoustic tokens'
embeddings in the AR and the NAR (Sec 3, language ID; ``language.kind: acoustic``), or to
the phoneme embeddings per token (``text``, as the open VALL-E X port does), or both. The
ids follow :mod:`valle.modules.language`: per text token (``language_tokens``), the
prompt's speech the prompt language, the generated speech the target language.

Cross-lingual inference (Sec 4): the text is the prompt's transcript (in the prompt's
language) followed by the target text (in the target language), the acoustic prompt is the
source speaker's speech; ``generate(..., language=target ids, prompt_language=prompt ids)``.
Accent control: ``language`` (the generated speech's id) may differ from the target text's
own language; the text's language gives native pronunciation, the prompt's an accent.
Multilingual G2P with language tags is :mod:`valle.text.language_tags`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from valle.ar.config import ARConfig
from valle.ar.generate import Sampler
from valle.ar.language import LanguageARDecoder, build_language_ar_decoder
from valle.config import NARConfig, VocabConfig, opt
from valle.data.batch import SynthesisInputs
from valle.data.featurizers import DataRequest, LanguagePerToken
from valle.modules.language import AcousticLanguageConfig, LanguageConfig, LanguageIds
from valle.nar.language import LanguageNARDecoder
from valle.registry import register_variant
from valle.variants.tiny import TinySize, tiny_config
from valle.variants.valle import STAGES, Valle, build_nar, nar_reads_other_utterance

__all__ = ["VallexConfig", "Vallex"]


@register_variant("vallex")
@dataclass(frozen=True)
class VallexConfig:
    """VALL-E X: VALL-E's parts plus language ids; vocabulary facts come from the data."""

    vocab: VocabConfig = opt(help="vocabulary facts read from tokens.txt and the codec")
    ar: ARConfig | None = opt(help="AR decoder over codebook 1 (null: none)", factory=ARConfig)
    nar: NARConfig | None = opt(
        help="NAR decoder over codebooks 2..Q (null: none)", factory=NARConfig
    )
    language: LanguageConfig = opt(
        help="language-id conditioning: where the embedding is added",
        factory=AcousticLanguageConfig,
    )

    stages: ClassVar[tuple[str, ...]] = STAGES

    def build(self) -> Vallex:
        lang = self.language  # its kind makes the sides it conditions (None: that side not)
        ar = None
        if self.ar is not None:
            d = self.ar.backbone.d_model
            ar = build_language_ar_decoder(self.ar, self.vocab,
                audio_language=lang.audio_embedding(d), text_conditioner=lang.text_conditioner(d))  # fmt: skip

        def nar_parts(d: int) -> dict[str, Any]:
            return {"audio_conditioner": lang.audio_embedding(d),
                    "text_conditioner": lang.text_conditioner(d)}  # fmt: skip

        nar = build_nar(self.nar, self.vocab, LanguageNARDecoder, nar_parts)
        return Vallex(ar, nar, config=self)  # type: ignore[arg-type]

    def data_request(self, stages: tuple[str, ...] | None = None) -> DataRequest:
        """The language of every text token (``language_tokens``); another utterance per item
        only for a trained NAR whose prompt policy reads one."""
        needs = nar_reads_other_utterance(self.nar, stages)
        return DataRequest(featurizers=(LanguagePerToken(),), other_utterance_prompt=needs)

    @classmethod
    def tiny(
        cls,
        *,
        prompt: str = "same_utterance_prefix",
        max_len_ratio: float = 4.0,
        sampler: str = "greedy",
        language: str = "acoustic",
        overrides: Iterable[str] = (),
        **size: Any,
    ) -> VallexConfig:
        """A config small enough to train in seconds on a CPU (greedy AR by default).
        ``size``: :class:`~valle.variants.tiny.TinySize` keywords."""
        s = TinySize(**size)
        return tiny_config(cls, s, overrides, ar=s.ar(),
                           nar=s.nar(kind=prompt), language={"kind": language})  # fmt: skip


class Vallex(Valle):
    """VALL-E with language ids; ``loss`` as VALL-E's (the parts read the ids)."""

    ar: LanguageARDecoder | None  # type: ignore[assignment]
    nar: LanguageNARDecoder | None  # type: ignore[assignment]

    def loss(
        self,
        batch: Mapping[str, Any],
        stages: Iterable[str] = STAGES,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_languages(LanguageIds.from_batch(batch))
        return super().loss(batch, stages, generator)

    def check_languages(self, ids: LanguageIds) -> None:
        """A clear error for language ids outside the model's tables (one device sync)."""
        cfg = getattr(self.config, "language", None)
        if cfg is None:
            return
        both = torch.cat([ids.text.reshape(-1), ids.prompt, ids.target])
        if both.numel() and (int(both.min()) < 0 or int(both.max()) >= cfg.num_languages):
            raise ValueError(
                f"language ids in [{int(both.min())}, {int(both.max())}] but the model has "
                f"{cfg.num_languages} languages (valle.text.LANGUAGES)"
            )

    @torch.no_grad()
    def generate(  # type: ignore[override]
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        *,
        language: Tensor | None = None,
        prompt_language: Tensor | None = None,
        language_tokens: Tensor | None = None,
        sampler: Sampler | None = None,
        generator: torch.Generator | None = None,
        max_len_ratio: float | None = None,
        nar_sampler: Sampler | None = None,
        prompt_text_lens: Tensor | None = None,
    ) -> list[Tensor]:
        """Zero-shot, possibly cross-lingual TTS (Sec 4); call ``model.eval()`` first.

        Args:
            text_tokens, text_lens, prompt_codes, prompt_lens, sampler, generator,
                max_len_ratio, nar_sampler, prompt_text_lens: as
                :meth:`valle.variants.valle.Valle.generate`.
            language: (B,) id of the speech to generate (the target text's language; another
                id for accent control). None: 0.
            prompt_language: (B,) id of the prompt's speech (None: ``language``).
            language_tokens: (B, S) id of every text token (a code-switched text); None: the
                prompt transcript's tokens (``prompt_text_lens``) ``prompt_language``, the
                others ``language``.
        Returns:
            B long tensors (T_b, Q): the continuation only.
        """
        ids = LanguageIds.for_synthesis(
            text_tokens,
            language=language,
            prompt_language=prompt_language,
            prompt_text_lens=prompt_text_lens,
            language_tokens=language_tokens,
        )
        self.check_languages(ids)
        steps = self.require_ar().generate(
            text_tokens,
            text_lens,
            prompt_codes,
            prompt_lens,
            language=ids,
            sampler=sampler,
            generator=generator,
            max_len_ratio=max_len_ratio,
        )
        inputs = SynthesisInputs(
            text_tokens, text_lens, prompt_codes, prompt_lens, ids.target, prompt_text_lens
        )
        first = self.first_codebook(steps, text_lens, max_len_ratio)
        return self.complete(first, inputs, nar_sampler, generator, language=ids)
