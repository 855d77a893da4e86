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
    phoneme_ids,
    prompt_alignment,
    prompt_text_lens_or_none,
    scale_durations,
)
from valle.config import ConfigError, NARConfig, VocabConfig, apply_overrides, from_dict, opt
from valle.data.batch import SynthesisInputs, pad_rows
from valle.data.featurizers import DataRequest, Durations
from valle.nar.aligned import PhonemeAlignedNAR
from valle.nar.prompts import prompt_policy_class
from valle.registry import register_variant
from valle.variants.valle import STAGES, Valle

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
        if self.ar is not None and (
            not isinstance(self.ar.head, PointerHeadConfig)
            or not isinstance(self.ar.stop, PointerStopConfig)
        ):
            raise ConfigError("vallr: ar.head.kind and ar.stop.kind must be 'pointer'")

    def build(self) -> Vallr:
        ar = build_pointer_decoder(self.ar, self.vocab) if self.ar is not None else None
        nar = None
        if self.nar is not None and self.vocab.num_codebooks > 1:
            nar = PhonemeAlignedNAR.from_config(self.nar, self.vocab)
        return Vallr(ar, nar, config=self)

    def data_request(self, stages: tuple[str, ...] | None = None) -> DataRequest:
        """Durations always (both parts read them); another utterance only for a trained NAR
        whose prompt policy reads one."""
        needs = False
        if self.nar is not None and (stages is None or "nar" in stages):
            policy: Any = prompt_policy_class(self.nar.prompt.kind)
            needs = bool(policy.needs_other_utterance)
        return DataRequest(featurizers=(Durations(),), other_utterance_prompt=needs)

    @classmethod
    def tiny(
        cls,
        *,
        text_vocab_size: int = 12,
        codebook_size: int = 16,
        num_codebooks: int = 4,
        d_model: int = 32,
        num_layers: int = 2,
        num_heads: int = 2,
        ffn_dim: int = 64,
        dropout: float = 0.0,
        prompt: str = "same_utterance_prefix",
        max_len_ratio: float = 4.0,
        sampler: str = "greedy",
        overrides: Iterable[str] = (),
    ) -> VallrConfig:
        """A config small enough to train in seconds on a CPU (greedy code and pointer)."""
        backbone = {
            "num_layers": num_layers,
            "num_heads": num_heads,
            "d_model": d_model,
            "ffn_dim": ffn_dim,
            "dropout": dropout,
        }
        cfg = from_dict(
            cls,
            {
                "vocab": {
                    "text_vocab_size": text_vocab_size,
                    "codebook_size": codebook_size,
                    "num_codebooks": num_codebooks,
                },
                "ar": {
                    "backbone": backbone,
                    "head": {"kind": "pointer"},
                    "stop": {"kind": "pointer"},
                    "max_len_ratio": max_len_ratio,
                    "sampler": {"kind": sampler},
                },
                "nar": {"backbone": backbone, "prompt": {"kind": prompt}},
            },
        )
        return apply_overrides(cfg, overrides)


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
        check_durations(batch)  # a batch without durations: a clear error first
        return super().loss(batch, stages, generator)

    @torch.no_grad()
    def generate(  # type: ignore[override]
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
    ) -> list[Tensor]:
        """Zero-shot TTS; see :meth:`generate_aligned` (this returns its codes only)."""
        codes, _ = self.generate_aligned(
            text_tokens,
            text_lens,
            prompt_codes,
            prompt_lens,
            language=language,
            sampler=sampler,
            generator=generator,
            max_len_ratio=max_len_ratio,
            nar_sampler=nar_sampler,
            prompt_text_lens=prompt_text_lens,
            prompt_durations=prompt_durations,
            durations=durations,
            speed=speed,
        )
        return codes

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
        if self.ar is None:
            raise ValueError("generation needs an AR; this model was built with ar: null")
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
            first = self.ar.generate(text_tokens, text_lens, prompt_codes, prompt_lens, **kwargs)
            align, n = pad_rows([s[:, 1] for s in first], -1)  # (B, T)
            durations = alignment_to_durations(align, n, S)
        if durations is not None and speed is not None:
            idx = torch.arange(S, device=text_lens.device)
            target = (idx >= prompt_text_lens[:, None]) & (idx < text_lens[:, None])  # (B, S)
            durations = scale_durations(torch.where(target, durations, 0), speed, keep=target)
        steps = self.ar.generate(
            text_tokens, text_lens, prompt_codes, prompt_lens, durations=durations, **kwargs
        )
        first_codes = [s[:, 0] for s in steps]
        aligns = [s[:, 1] for s in steps]
        if self.nar is None:
            return [c[:, None] for c in first_codes], aligns
        codes, lens = pad_rows(first_codes, 0)  # (B, T)
        align, _ = pad_rows(aligns, -1)  # (B, T)
        P = prompt_codes.shape[1]
        p_align = prompt_alignment(prompt_lens, prompt_text_lens, S, P, prompt_durations)
        inputs = SynthesisInputs(
            text_tokens, text_lens, prompt_codes, prompt_lens, language, prompt_text_lens
        )
        full = self.nar.generate(
            inputs,
            codes,
            lens,
            sampler=nar_sampler,
            generator=generator,
            prompt_ids=phoneme_ids(text_tokens, p_align),
            target_ids=phoneme_ids(text_tokens, align),
        )  # (B, T, Q)
        return [full[b, : int(lens[b])] for b in range(len(steps))], aligns
