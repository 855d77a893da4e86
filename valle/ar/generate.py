"""Batched AR generation with a KV cache: continue an acoustic prompt until the stop policy
ends each row.

Shape legend: B batch, S text tokens, P prompt frames, Q codebooks, N steps, ``*E`` the
layout's step shape.

VALL-E inference (Sec 4.3): the text is the prompt's transcript followed by the target text,
the acoustic prompt's steps are the audio prefix, and the AR continues it. Rows may have
different text and prompt lengths (no left-padding: positions are per row, see
:mod:`valle.modules.positions`). The loop knows no token: the layout makes the prompt's steps
and BOS, the head draws each step (with its decoding memory, e.g. the code history a
repetition-aware sampler reads), the stop policy says when a row ends, and every row ends
after ``ceil(ceil(max_len_ratio * text_len) / frames_per_step)`` steps at the latest, so
generation always terminates. One host sync per step (has every row ended?).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import Tensor

from valle.ar.stops import DecodeContext
from valle.modules.positions import SegmentPositions
from valle.modules.transformer import KVCache
from valle.sampling import TokenSampler

__all__ = ["Decodable", "DecodingOf", "Sampler", "generate_ar", "max_new_steps"]

logger = logging.getLogger(__name__)

Sampler = TokenSampler  # (logits (B, V), history (B, t), generator) -> (B,)


class Decodable(Protocol):
    """What :func:`generate_ar` needs of a decoder (:class:`~valle.ar.decoder.ARDecoder`)."""

    layout: Any
    head: Any
    stop: Any
    default_sampler: Any
    max_len_ratio: float

    def prefill(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Tensor | None = None,
        capacity: int = 0,
    ) -> tuple[Tensor, KVCache]: ...

    def audio_positions(
        self, lens: Tensor, length: int, start: Tensor | None = None
    ) -> SegmentPositions: ...

    def step(self, step_in: Tensor, pos: SegmentPositions, cache: KVCache) -> Tensor: ...

    def layout_step(self, step: Tensor) -> Tensor:
        """The layout's step (B, *E) inside a step this decoding feeds (B, ...): what
        ``layout.from_steps`` reads (the step itself, or its code for a phoneme-aligned AR).
        For tools that drive ``step`` themselves; :func:`generate_ar` does not call it."""
        ...


class DecodingOf:
    """A :class:`Decodable` that runs on the decoder ``ar`` and adds what one generate call
    knows (a language id, an alignment, a frame track): it shares the decoder's layout, head,
    stop, default sampler and length bound, and passes every call through. A subclass
    overrides the calls whose inputs it changes."""

    def __init__(self, ar: Any) -> None:
        self.ar = ar
        self.layout = ar.layout
        self.head = ar.head
        self.stop = ar.stop
        self.default_sampler = ar.default_sampler
        self.max_len_ratio = ar.max_len_ratio

    def prefill(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Any = None,
        capacity: int = 0,
    ) -> tuple[Tensor, KVCache]:
        return self.ar.prefill(text_tokens, text_lens, audio_in, audio_lens, language, capacity)

    def audio_positions(
        self, lens: Tensor, length: int, start: Tensor | None = None
    ) -> SegmentPositions:
        return self.ar.audio_positions(lens, length, start)

    def step(self, step_in: Tensor, pos: SegmentPositions, cache: KVCache) -> Tensor:
        return self.ar.step(step_in, pos, cache)

    def layout_step(self, step: Tensor) -> Tensor:
        return self.ar.layout_step(step)


def max_new_steps(text_lens: Tensor, ratio: float) -> Tensor:
    """Per-row bound ``max(1, ceil(ratio * text_len))`` (B,) long (frames)."""
    if not ratio > 0 or math.isinf(ratio):
        raise ValueError(f"max_len_ratio must be a positive finite number, got {ratio}")
    return torch.ceil(text_lens.double() * ratio).long().clamp(min=1)


@torch.inference_mode()
def generate_ar(
    ar: Decodable,
    text_tokens: Tensor,
    text_lens: Tensor,
    prompt_codes: Tensor,
    prompt_lens: Tensor,
    *,
    language: Tensor | None = None,
    sampler: Sampler | None = None,
    generator: torch.Generator | None = None,
    max_len_ratio: float | None = None,
    conditions: Mapping[str, Tensor] | None = None,
) -> list[Tensor]:
    """Continue each row's prompt; returns B tensors (N_b, *E) of new steps (without the
    step that ended the row, unless the stop policy keeps it).

    Args:
        ar: an :class:`~valle.ar.decoder.ARDecoder`.
        text_tokens: (B, S) prompt transcript + target text, right-padded.
        text_lens: (B,) valid text tokens per row (>= 1).
        prompt_codes: (B, P, Q) acoustic prompt, right-padded (P may be 0). The layout
            keeps the prompt's whole steps that end at its last frame.
        prompt_lens: (B,) valid prompt frames per row.
        sampler: the head's sampler, for a categorical head ``(logits (B, V), history (B, t),
            generator) -> (B,)``; ``history`` holds each row's prompt codes then the codes
            generated so far (for a grouped layout, frame by frame: the elements of a step
            are drawn in order, each seeing the earlier ones). None: the decoder's
            ``default_sampler``.
        max_len_ratio: overrides the decoder's bound (new frames per text token).
        conditions: per-row tensors a stop policy reads (e.g. predicted durations).
    """
    sampler = ar.default_sampler if sampler is None else sampler
    B = text_tokens.shape[0]
    device = text_tokens.device
    ratio = ar.max_len_ratio if max_len_ratio is None else max_len_ratio
    limit = ar.layout.max_steps(max_new_steps(text_lens, ratio)).to(device)  # (B,) steps
    steps, step_lens, _ = ar.layout.to_steps(prompt_codes, prompt_lens)  # (B, P', *E)
    audio_in, in_lens = ar.layout.with_bos(steps, step_lens)  # (B, P' + 1, *E)
    total = int(limit.max())
    capacity = text_tokens.shape[1] + audio_in.shape[1] + total  # every key this call makes
    out, cache = ar.prefill(text_tokens, text_lens, audio_in, in_lens, language, capacity)
    memory = ar.head.start(steps, step_lens, total)
    context = DecodeContext(text_lens, prompt_lens, limit, conditions or {})
    stop_state = ar.stop.begin(context)
    keep = int(ar.stop.keeps_last)
    index = in_lens.clone()  # (B,) in-segment index of the next audio input
    ones = torch.ones_like(index)
    out_lens = limit.clone()
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    by_policy = torch.zeros_like(finished)  # rows the stop policy ended (not the bound)
    result: Tensor | None = None  # (B, total, *E)
    for n in range(total):
        out = ar.stop.prepare(out, n, stop_state)
        step = ar.head.sample(out, memory, sampler, generator)  # (B, *E)
        if result is None:
            result = step.new_zeros(B, total, *step.shape[1:])
        result[:, n] = step
        over = n >= limit  # (B,)
        ends = ar.stop(step, out, n, stop_state) & ~over  # (B,)
        stop = ~finished & (ends | over)
        out_lens = torch.where(stop, torch.where(ends, n + keep, n), out_lens)
        by_policy |= stop & ends
        finished |= stop
        if n + 1 == total or bool(finished.all()):
            break
        out = ar.step(step, ar.audio_positions(ones, 1, index), cache)
        index = index + 1
    assert result is not None
    bounded = int((~by_policy).sum())
    if bounded:
        logger.warning("AR generation hit the length bound for %d rows", bounded)
    return [result[b, :n_b] for b, n_b in enumerate(out_lens.tolist())]
