"""A NAR conditioned on the phonemes aligned to its frames (VALL-E R Sec 3.2).

Shape legend: B batch, S text tokens, P prompt frames, T frames, Q codebooks, D model width.

VALL-E R's NAR sees the aligned phoneme sequence: every audio input (prompt and target
frames) gets the embedding of the phoneme spoken at that frame, added to its code
embeddings (:class:`AlignedPhonemeConditioner`, passed to
:class:`~valle.nar.decoder.NARDecoder` as its ``audio_conditioner``). The table is the NAR's
own text embedding (shared, as in the AR: see :mod:`valle.ar.pointer`).

Training reads the frames' phonemes from ``batch["durations"]``; a prompt from another
utterance has no alignment (PAD_ID: nothing added), and so has it at inference for the
policies that train so. Inference reads the target frames' phonemes from the AR's pointer
trajectory and the prompt's from the prompt alignment the AR used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from valle.ar.generate import Sampler
from valle.ar.pointer import check_durations, durations_to_alignment, phoneme_ids
from valle.data import batch as B_
from valle.data.batch import SynthesisInputs
from valle.nar.decoder import NARDecoder

__all__ = ["AlignedPhonemeConditioner", "PhonemeAlignedNAR", "frame_phoneme_ids"]


def frame_phoneme_ids(batch: Mapping[str, Any]) -> Tensor:
    """The phoneme id of every frame of ``audio_codes`` (B, T) from the batch's durations
    (PAD_ID beyond a row's frames)."""
    d = check_durations(batch)
    T = batch[B_.AUDIO_CODES].shape[1]
    align = durations_to_alignment(d, batch[B_.TEXT_LENS], T)  # (B, T)
    return phoneme_ids(batch[B_.TEXT_TOKENS], align)


class AlignedPhonemeConditioner(nn.Module):
    """Audio inputs (B, L, D) + the embedding of each frame's phoneme id (B, L); PAD_ID adds
    nothing. ``phonemes`` is the NAR's text embedding (not a submodule: the NAR owns it)."""

    # every call needs per-frame ids: tools that run the NAR without an alignment (the speed
    # bench) read this and give it some
    needs_frame_ids = True

    def __init__(self) -> None:
        super().__init__()
        self._phonemes: list[nn.Module] = []

    def tie(self, phonemes: nn.Module) -> None:
        self._phonemes = [phonemes]

    def forward(self, x: Tensor, ids: Tensor | None) -> Tensor:
        if ids is None:
            raise ValueError("the phoneme-aligned NAR needs each frame's phoneme id (audio_cond)")
        if ids.shape != x.shape[:2]:
            raise ValueError(f"audio_cond {tuple(ids.shape)} does not match inputs {x.shape[:2]}")
        return x + self._phonemes[0](ids) * (ids != B_.PAD_ID)[..., None]  # (B, L, D)


class PhonemeAlignedNAR(NARDecoder):
    """:class:`~valle.nar.decoder.NARDecoder` with an :class:`AlignedPhonemeConditioner`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("audio_conditioner", AlignedPhonemeConditioner())
        super().__init__(**kwargs)
        assert isinstance(self.audio_conditioner, AlignedPhonemeConditioner)
        self.audio_conditioner.tie(self.text_embedding)

    def teacher_forcing_split(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> tuple[Any, Tensor]:
        """The prompt policy's split of ``batch`` (codes cut to Q) and each split frame's
        phoneme id ``(B, P + T)``: the ids from ``batch["durations"]`` travel as one more
        column of the codes through the policy, so prompt and target frames keep theirs
        whatever the split; a ``prompt_codes`` prompt (another utterance) has none (PAD_ID).
        Training (:meth:`~valle.nar.decoder.NARDecoder.loss`) and the diagnostics
        (``valle.eval.teacher_forcing``) both read it."""
        Q = self.num_codebooks
        ids = frame_phoneme_ids(batch)  # (B, T)
        aug = dict(batch)
        codes = batch[B_.AUDIO_CODES][..., :Q]  # (B, T, Q)
        aug[B_.AUDIO_CODES] = torch.cat([codes, ids[..., None]], dim=-1)
        if B_.PROMPT_CODES in batch:  # another utterance: no alignment
            prompt = batch[B_.PROMPT_CODES][..., :Q]  # (B, P, Q)
            aug[B_.PROMPT_CODES] = torch.cat([prompt, prompt.new_zeros(*prompt.shape[:2], 1)], -1)
        split = self.prompt(aug, generator)
        cond = torch.cat([split.prompt_codes[..., Q], split.target_codes[..., Q]], dim=1)
        split = replace(
            split,
            prompt_codes=split.prompt_codes[..., :Q],
            target_codes=split.target_codes[..., :Q],
        )
        return split, cond

    @torch.no_grad()
    def generate(  # type: ignore[override]
        self,
        inputs: SynthesisInputs,
        first_codes: Tensor,
        lens: Tensor,
        *,
        sampler: Sampler | None = None,
        generator: torch.Generator | None = None,
        prompt_ids: Tensor | None = None,
        target_ids: Tensor | None = None,
    ) -> Tensor:
        """:meth:`NARDecoder.generate` with each frame's phoneme id: ``target_ids`` (B, T)
        from the AR's pointer, ``prompt_ids`` (B, P) from the prompt's alignment (read only
        by policies that trained with an aligned prompt: the same utterance's frames)."""
        if target_ids is None:
            raise ValueError("the phoneme-aligned NAR needs the target frames' phoneme ids")
        P = inputs.prompt_codes.shape[1] if self.prompt.uses_prompt else 0
        if prompt_ids is None or self.prompt.needs_other_utterance:
            prompt_ids = target_ids.new_zeros(target_ids.shape[0], P)
        cond = torch.cat([prompt_ids[:, :P], target_ids], dim=1)  # (B, P + T)
        return super().generate(
            inputs, first_codes, lens, sampler=sampler, generator=generator, audio_cond=cond
        )
