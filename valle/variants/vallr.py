"""VALL-E R (Han et al. 2024, arXiv 2406.07855): phoneme-aligned AR with monotonic decoding.

Shape legend: B batch, S text tokens, P prompt frames, T frames, Q codebooks.

The wiring only: the AR is :class:`~valle.ar.pointer.PointerARDecoder` (each step carries
its aligned phoneme and predicts its code and the pointer move, Sec 3.2; the pointer only
stays or advances and generation ends when it passes the last phoneme, Sec 3.3), the NAR is
:class:`~valle.nar.aligned.PhonemeAlignedNAR` (its frames carry their phonemes). Training
reads ``durations`` (the aligner stage); prosody control (Sec 3.4) forces an alignment:
given durations, or the model's own scaled by ``speed``. Codec merging (Sec 3.1) is a codec
choice (``valle.codec.merging``), not part of this model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from valle.ar.config import ARConfig
from valle.ar.generate import Sampler
from valle.ar.pointer import (
    PointerARDecoder,
    PointerHeadConfig,
    PointerStopConfig,
    alignment_to_durations,
    build_pointer_decoder,
    check_durations,
    check_pointer_config,
    phoneme_ids,
    prompt_alignment,
    prompt_text_lens_or_none,
    scale_durations,
)
from valle.ar.windows import snap_durations
from valle.config import NARConfig, VocabConfig, opt
from valle.data import batch as B_
from valle.data.batch import SynthesisInputs, pad_rows
from valle.data.featurizers import DataRequest, Durations
from valle.nar.aligned import PhonemeAlignedNAR
from valle.registry import register_variant
from valle.variants.tiny import TinySize, tiny_config
from valle.variants.valle import (
    STAGES,
    Valle,
    build_nar,
    codes_only,
    nar_reads_other_utterance,
)

__all__ = ["VallrConfig", "Vallr"]


def _pointer_ar() -> ARConfig:
    return ARConfig(head=PointerHeadConfig(), stop=PointerStopConfig())


@register_variant("vallr")
@dataclass(frozen=True)
class VallrConfig:
    """VALL-E R: a phoneme-aligned AR and NAR; vocabulary facts come from the data."""

    vocab: VocabConfig = opt(help="vocabulary facts read from tokens.txt and the codec")
    ar: ARConfig | None = opt(
        help="phoneme-aligned AR over codebook 1 (head and stop kind: pointer; null: none)",
        factory=_pointer_ar,
    )
    nar: NARConfig | None = opt(
        help="phoneme-aligned NAR over codebooks 2..Q (null: none)", factory=NARConfig
    )

    stages: ClassVar[tuple[str, ...]] = STAGES

    def __post_init__(self) -> None:
        if self.ar is not None:
            check_pointer_config(self.ar)  # on load, before anything is built

    def build(self) -> Vallr:
        ar = build_pointer_decoder(self.ar, self.vocab) if self.ar is not None else None
        return Vallr(ar, build_nar(self.nar, self.vocab, PhonemeAlignedNAR), config=self)

    def data_request(self, stages: tuple[str, ...] | None = None) -> DataRequest:
        """Durations always (both parts read them); another utterance only for a trained NAR
        whose prompt policy reads one."""
        needs = nar_reads_other_utterance(self.nar, stages)
        return DataRequest(featurizers=(Durations(),), other_utterance_prompt=needs)

    @classmethod
    def tiny(
        cls,
        *,
        prompt: str = "same_utterance_prefix",
        overrides: Iterable[str] = (),
        **size: Any,
    ) -> VallrConfig:
        """A config small enough to train in seconds on a CPU (greedy code and pointer).
        ``size``: :class:`~valle.variants.tiny.TinySize` keywords."""
        s = TinySize(**size)
        ar = s.ar(head={"kind": "pointer"}, stop={"kind": "pointer"})
        return tiny_config(cls, s, overrides, ar=ar, nar=s.nar(kind=prompt))


class Vallr(Valle):
    """Phoneme-aligned AR + NAR; ``loss`` as VALL-E's (the parts read the durations)."""

    ar: PointerARDecoder | None  # type: ignore[assignment]
    nar: PhonemeAlignedNAR | None  # type: ignore[assignment]

    def loss(
        self,
        batch: Mapping[str, Any],
        stages: Iterable[str] = STAGES,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        durations = check_durations(batch)  # a batch without durations: a clear error first
        rate = self.ar.rate if self.ar is not None else 1
        if rate > 1:  # merged codes: the NAR trains on the alignment the AR's windows give it
            snapped = snap_durations(durations, batch[B_.AUDIO_LENS], rate)  # (B, S)
            batch = {**batch, B_.DURATIONS: snapped}
        return super().loss(batch, stages, generator)

    @torch.no_grad()
    def generate_aligned(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        *,
        language: Tensor | None = None,
        sampler: Sampler | None = None,
        generator: torch.Generator | None = None,
        max_len_ratio: float | None = None,
        nar_sampler: Sampler | None = None,
        prompt_text_lens: Tensor | None = None,
        prompt_durations: Tensor | None = None,
        durations: Tensor | None = None,
        speed: float | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Zero-shot TTS with the alignment it followed. Call ``model.eval()`` first.

        Args:
            text_tokens, text_lens, prompt_codes, prompt_lens, language, sampler, generator,
                max_len_ratio, nar_sampler: as :meth:`valle.variants.valle.Valle.generate`.
            prompt_text_lens: (B,) the prompt transcript's tokens (needed with a prompt: the
                pointer starts after them and the prompt's frames are aligned to them).
            prompt_durations: (B, S) frames per prompt-transcript token; None (default):
                the prompt's frames split uniformly over its transcript.
            durations: (B, S) frames per target token to force (prosody from a reference;
                the prompt transcript's entries are ignored).
            speed: speaking-rate factor (0.8: slower, 1.25: faster): the forced durations,
                or else the model's own (a first, free pass), scaled by ``1 / speed``.
        Returns:
            B codes (T_b, Q) (the continuation only) and B phoneme indices (T_b,) per frame.
        """
        ar = self.require_ar()
        prompt_text_lens = prompt_text_lens_or_none(prompt_text_lens, prompt_lens, text_lens)
        kwargs: dict[str, Any] = dict(
            prompt_text_lens=prompt_text_lens,
            language=language,
            sampler=sampler,
            generator=generator,
            max_len_ratio=max_len_ratio,
            prompt_durations=prompt_durations,
        )
        S = text_tokens.shape[1]
        if speed is not None and durations is None:  # the model's own alignment, scaled
            first = ar.generate(text_tokens, text_lens, prompt_codes, prompt_lens, **kwargs)
            align, n = pad_rows([s[:, 1] for s in first], -1)  # (B, T)
            durations = alignment_to_durations(align, n, S)
        if durations is not None and speed is not None:
            idx = torch.arange(S, device=text_lens.device)
            target = (idx >= prompt_text_lens[:, None]) & (idx < text_lens[:, None])  # (B, S)
            durations = scale_durations(torch.where(target, durations, 0), speed, keep=target)
        steps = ar.generate(
            text_tokens, text_lens, prompt_codes, prompt_lens, durations=durations, **kwargs
        )
        aligns = [s[:, 1] for s in steps]
        nar_inputs: dict[str, Tensor] = {}
        if self.nar is not None:  # the NAR's frames carry their phonemes too
            P = prompt_codes.shape[1]
            p_align = prompt_alignment(prompt_lens, prompt_text_lens, S, P, prompt_durations)
            nar_inputs = {
                "prompt_ids": phoneme_ids(text_tokens, p_align),
                "target_ids": phoneme_ids(text_tokens, pad_rows(aligns, -1)[0]),
            }
        inputs = SynthesisInputs(
            text_tokens, text_lens, prompt_codes, prompt_lens, language, prompt_text_lens
        )
        first_codes = [s[:, 0] for s in steps]
        return self.complete(first_codes, inputs, nar_sampler, generator, **nar_inputs), aligns

    generate = codes_only(generate_aligned)  # type: ignore[assignment]
