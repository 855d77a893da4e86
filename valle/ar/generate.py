"""Batched AR generation with a KV cache: continue an acoustic prompt until EOS.

Shape legend: B batch, S text tokens, P prompt frames, Q codebooks, N steps, V classes.

VALL-E inference (Sec 4.3): the text is the prompt's transcript followed by the target text,
the acoustic prompt's first-codebook codes are the audio prefix, and the AR continues it.
Rows may have different text and prompt lengths (no left-padding: positions are per row,
see :mod:`valle.modules.positions`); a row stops at EOS or after
``ceil(max_len_ratio * text_len)`` new steps, so generation always terminates.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from valle.sampling import TokenSampler

if TYPE_CHECKING:
    from valle.ar.decoder import ARDecoder

__all__ = ["Sampler", "generate_ar", "max_new_steps"]

logger = logging.getLogger(__name__)

Sampler = TokenSampler  # (logits (B, V), history (B, t), generator) -> (B,)


def max_new_steps(text_lens: Tensor, ratio: float) -> Tensor:
    """Per-row bound ``max(1, ceil(ratio * text_len))`` (B,) long."""
    if not ratio > 0 or math.isinf(ratio):
        raise ValueError(f"max_len_ratio must be a positive finite number, got {ratio}")
    return torch.ceil(text_lens.double() * ratio).long().clamp(min=1)


@torch.inference_mode()
def generate_ar(
    ar: ARDecoder,
    text_tokens: Tensor,
    text_lens: Tensor,
    prompt_codes: Tensor,
    prompt_lens: Tensor,
    *,
    language: Tensor | None = None,
    sampler: Sampler | None = None,
    generator: torch.Generator | None = None,
    max_len_ratio: float | None = None,
) -> list[Tensor]:
    """Continue each row's prompt; returns B long tensors (N_b, *E) of new steps (no EOS).

    Args:
        ar: an :class:`~valle.ar.decoder.ARDecoder`.
        text_tokens: (B, S) prompt transcript + target text, right-padded.
        text_lens: (B,) valid text tokens per row (>= 1).
        prompt_codes: (B, P, Q) acoustic prompt, right-padded (P may be 0).
        prompt_lens: (B,) valid prompt frames per row.
        sampler: ``(logits (B, V), history (B, t), generator) -> (B,)``; ``history`` holds
            the codes generated so far (for a grouped layout, frame by frame: the elements
            of a step are drawn in order, each seeing the earlier ones). None: the
            decoder's ``default_sampler``.
        max_len_ratio: overrides the decoder's bound (new frames per text token).
    Each row stops at its first step holding an EOS (that step is dropped) or after
    ``ceil(ceil(ratio * text_len) / frames_per_step)`` steps.
    """
    sampler = ar.default_sampler if sampler is None else sampler
    B = text_tokens.shape[0]
    device = text_tokens.device
    ratio = ar.max_len_ratio if max_len_ratio is None else max_len_ratio
    per_step = ar.layout.frames_per_step
    limit = (max_new_steps(text_lens, ratio) + per_step - 1) // per_step  # (B,) steps
    limit = limit.to(device)
    steps, step_lens = ar.layout.prompt_steps(prompt_codes, prompt_lens)  # (B, P', *E)
    audio_in, in_lens = ar.with_bos(steps, step_lens)  # (B, P' + 1, *E)
    total = int(limit.max())
    capacity = text_tokens.shape[1] + audio_in.shape[1] + total  # every key this call makes
    logits, cache = ar.prefill(text_tokens, text_lens, audio_in, in_lens, language, capacity)
    step_shape = tuple(audio_in.shape[2:])
    width = math.prod(step_shape)  # codes per step
    index = in_lens.clone()  # (B,) in-segment index of the next audio input
    out_lens = limit.clone()
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    history = torch.zeros(B, total * width, dtype=torch.long, device=device)  # (B, n * width)
    eos = ar.eos_id
    for n in range(total):
        flat = logits.reshape(B, width, -1)  # (B, width, V)
        t = n * width
        for e in range(width):
            history[:, t + e] = sampler(flat[:, e], history[:, : t + e], generator)
        new = history[:, t : t + width]  # (B, width)
        is_eos = new == eos
        stop = ~finished & (is_eos.any(-1) | (n >= limit))
        out_lens = torch.where(stop, n, out_lens)
        finished |= stop
        if n + 1 == total or bool(finished.all()):
            break
        new.masked_fill_(finished[:, None] | is_eos, 0)  # any valid id
        logits = ar.step(new.reshape(B, *step_shape), index, cache)
        index = index + 1
    if int(finished.sum()) < B:
        logger.warning("AR generation hit the length bound for %d rows", int((~finished).sum()))
    history = history.reshape(B, total, *step_shape)  # (B, total, *E)
    return [history[b, : int(out_lens[b])] for b in range(B)]
