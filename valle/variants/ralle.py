"""RALL-E (Xin et al. 2024, arXiv 2404.03204): robust codec LM TTS with a prosody chain of thought.

Shape legend: B batch, S text tokens, P prompt frames, T frames, Q codebooks.

The wiring only: the AR is :class:`~valle.ar.prosody.ProsodyARDecoder` (pitch and duration
tokens per phoneme before the speech tokens, Sec 3.2), its mask policy
:class:`~valle.ar.masks.DurationGuidedMask` (k = 1, Sec 3.3), its stop
:class:`~valle.ar.stops.DurationStop` (D = sum of the predicted durations, an EOS before D
ignored, Sec 3.3), nucleus sampling (top-p 0.9) for pitch, durations and codes; the NAR is
VALL-E's, greedy. Training reads ``durations`` (the aligner stage) and ``pitch_tokens`` /
``duration_tokens`` (the prosody stage, ``python -m valle.bin.prosody``). Prosody control
(the user gives durations or pitch, or scales them) steers the chain of thought.

Ablations (config, no code change): ``ar.mask.kind=prosody_prefix`` (without the
duration-guided masking); ``prosody.max_duration=null ar.mask.kind=prosody_prefix
ar.stop.kind=eos`` (without the duration CoT: pitch CoT only, EOS stop); ``prosody=null
ar.mask.kind=prefix ar.stop.kind=eos`` (no chain of thought at all: VALL-E on the same data).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from valle.ar.builders import build_ar_decoder
from valle.ar.config import ARConfig
from valle.ar.generate import Sampler
from valle.ar.masks import DurationGuidedMaskConfig
from valle.ar.prosody import (
    ProsodyARDecoder,
    ProsodyControl,
    ProsodyCoTConfig,
    ProsodyTokens,
    build_prosody_decoder,
    check_prosody_config,
)
from valle.ar.stops import DurationStopConfig
from valle.config import ConfigError, NARConfig, VocabConfig, opt
from valle.data.batch import SynthesisInputs
from valle.data.featurizers import DataRequest, Durations
from valle.data.prosody import DurationTokens, PitchQuantizer, PitchTokens
from valle.registry import register_variant
from valle.sampling.factory import SampleConfig
from valle.variants.tiny import TinySize, tiny_config
from valle.variants.valle import (
    STAGES,
    Valle,
    build_nar,
    codes_only,
    nar_reads_other_utterance,
)

__all__ = ["RalleConfig", "Ralle"]


def _ralle_ar() -> ARConfig:
    return ARConfig(
        mask=DurationGuidedMaskConfig(window=1),
        stop=DurationStopConfig(),
        sampler=SampleConfig(top_p=0.9),
    )


@register_variant("ralle")
@dataclass(frozen=True)
class RalleConfig:
    """RALL-E: a prosody-CoT AR with duration-guided masking and stop, and VALL-E's NAR."""

    vocab: VocabConfig = opt(help="vocabulary facts read from tokens.txt and the codec")
    ar: ARConfig | None = opt(
        help="AR over codebook 1 (mask duration_guided, stop duration; null: none)",
        factory=_ralle_ar,
    )
    prosody: ProsodyCoTConfig | None = opt(
        help="the AR's prosody chain of thought (null: none, a plain VALL-E AR)",
        factory=ProsodyCoTConfig,
    )
    nar: NARConfig | None = opt(
        help="NAR decoder over codebooks 2..Q (null: none)", factory=NARConfig
    )

    stages: ClassVar[tuple[str, ...]] = STAGES

    def __post_init__(self) -> None:  # on load, before anything is built
        if self.ar is None:
            return
        if self.prosody is not None:
            check_prosody_config(self.ar, self.prosody)
        elif (
            self.ar.mask.reads_prosody
            or self.ar.mask.reads_durations
            or self.ar.stop.reads_durations
        ):
            # a stop the layout cannot serve (stop_flag on codes) is refused when it is built
            raise ConfigError(
                "ralle without prosody (prosody: null) is a plain AR with no prosody tokens "
                f"or durations for mask kind {self.ar.mask.kind!r} and stop kind "
                f"{self.ar.stop.kind!r}: use ar.mask.kind: prefix and ar.stop.kind: eos"
            )

    def build(self) -> Valle:
        """:class:`Ralle`; without the chain of thought (``prosody: null``) VALL-E itself,
        trained on the same data (the paper's baseline)."""
        if self.prosody is None:
            ar = build_ar_decoder(self.ar, self.vocab) if self.ar is not None else None
            return Valle(ar, build_nar(self.nar, self.vocab), config=self)
        prosody_ar = None
        if self.ar is not None:
            prosody_ar = build_prosody_decoder(self.ar, self.prosody, self.vocab)
        return Ralle(prosody_ar, build_nar(self.nar, self.vocab), config=self)

    def data_request(self, stages: tuple[str, ...] | None = None) -> DataRequest:
        """The prosody tokens and durations when the AR trains (its CoT targets and its
        alignment); another utterance only for a trained NAR whose prompt policy reads one."""
        feats: list[Any] = []
        if self.ar is not None and self.prosody is not None and (stages is None or "ar" in stages):
            if self.prosody.pitch_buckets is not None:
                feats.append(PitchTokens(self.prosody.pitch_buckets))
            if self.prosody.max_duration is not None:
                feats += [DurationTokens(self.prosody.max_duration), Durations()]
        needs = nar_reads_other_utterance(self.nar, stages)
        return DataRequest(featurizers=tuple(feats), other_utterance_prompt=needs)

    @classmethod
    def tiny(
        cls,
        *,
        pitch_buckets: int = 8,
        max_duration: int = 6,
        window: int = 1,
        prompt: str = "same_utterance_prefix",
        overrides: Iterable[str] = (),
        **size: Any,
    ) -> RalleConfig:
        """A config small enough to train in seconds on a CPU (greedy codes and prosody).
        ``size``: :class:`~valle.variants.tiny.TinySize` keywords."""
        s = TinySize(**size)
        ar = s.ar(mask={"kind": "duration_guided", "window": window},
                  stop={"kind": "duration"})  # fmt: skip
        prosody = {"pitch_buckets": pitch_buckets, "max_duration": max_duration,
                   "sampler": {"kind": s.sampler}}  # fmt: skip
        return tiny_config(cls, s, overrides, ar=ar, prosody=prosody, nar=s.nar(kind=prompt))


class Ralle(Valle):
    """Prosody-CoT AR + VALL-E's NAR; ``loss`` as VALL-E's (the AR's adds the prosody terms)."""

    ar: ProsodyARDecoder | None  # type: ignore[assignment]

    @torch.no_grad()
    def generate_with_prosody(
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
        durations: Tensor | None = None,
        pitch: Tensor | None = None,
        speed: float | None = None,
        pitch_scale: float | None = None,
        prompt_durations: Tensor | None = None,
        prompt_pitch: Tensor | None = None,
        prosody_sampler: Sampler | None = None,
    ) -> tuple[list[Tensor], ProsodyTokens]:
        """Zero-shot TTS with the prosody it followed. Call ``model.eval()`` first.

        Args:
            text_tokens, text_lens, prompt_codes, prompt_lens, language, sampler, generator,
                max_len_ratio, nar_sampler, prompt_text_lens: as
                :meth:`valle.variants.valle.Valle.generate` (``prompt_text_lens`` also
                aligns the prompt's frames to its transcript).
            durations: (B, S) frames per target phoneme to force (prosody control).
            pitch: (B, S) pitch tokens to force (e.g. a reference's,
                ``valle.data.prosody``); entries < 0 are left to the model.
            speed: speaking-rate factor (0.8 slower, 1.25 faster) on the durations.
            pitch_scale: F0 factor on the voiced pitch tokens.
            prompt_durations, prompt_pitch: the prompt transcript's prosody when known.
            prosody_sampler: pitch/duration sampler (None: the config's nucleus 0.9).
        Returns:
            B codes (T_b, Q) (the continuation only) and the prosody tokens.
        """
        control = ProsodyControl(durations, pitch, speed, pitch_scale, prompt_durations,
                                 prompt_pitch, PitchQuantizer().log_ratio)  # fmt: skip
        steps, prosody = self.require_ar().generate(
            text_tokens, text_lens, prompt_codes, prompt_lens, prompt_text_lens=prompt_text_lens,
            language=language, sampler=sampler, prosody_sampler=prosody_sampler,
            generator=generator, max_len_ratio=max_len_ratio, control=control,
        )  # fmt: skip
        inputs = SynthesisInputs(
            text_tokens, text_lens, prompt_codes, prompt_lens, language, prompt_text_lens
        )
        first = self.first_codebook(steps, text_lens, max_len_ratio)
        return self.complete(first, inputs, nar_sampler, generator), prosody

    generate = codes_only(generate_with_prosody)  # type: ignore[assignment]
