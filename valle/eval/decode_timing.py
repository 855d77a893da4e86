"""Timed decoding through the model's own API: cached AR steps, recomputed AR steps, NAR stages.

Shape legend: B batch, S text tokens, P prompt frames (steps after the layout), T AR steps,
Q codebooks, E the layout's per-step shape (empty for one code, (G,) for a group of codes,
(F,) for a mel step), D model width.

Every function drives the AR and NAR as generation does; only the choice of the next input
differs, so that each run makes exactly the number of steps asked for:

- :func:`time_cached_ar`: the layout's ``to_steps`` / ``with_bos``, then ``ar.decoding(text)``
  (what ``generate`` steps on; VALL-E X's tags the steps with a language), its ``prefill``
  once and ``step`` per step, each timed;
- :func:`time_recomputed_ar`: no cache: ``ar.hidden`` over ``[text ; BOS, prompt, steps so
  far]`` and ``ar.head`` at the last position (``ARDecoder.forward`` is the head over every
  position; a recomputing decoder needs the last only), timed at a few lengths and fitted by a
  quadratic (linear layers + quadratic attention);
- :func:`time_nar`: the NAR's forward per stage, scaled to all stages;
- :func:`time_refine`: a mel model's post-net over the whole output (MELLE).

:func:`next_input` picks the input fed back: the best code other than EOS, or a continuous
head's mean step (MELLE; its stop flag is not read).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from valle.eval.clock import sync
from valle.eval.matvec_floor import MatvecPass

__all__ = ["next_input", "time_cached_ar", "time_nar", "time_recomputed_ar", "time_refine"]


def next_input(ar: Any, out: Tensor) -> Tensor:
    """The step (B, *E) fed back after head output ``out``, never ending a row."""
    cb = getattr(ar.layout, "codebook_size", None)
    if cb is None:
        from valle.sampling.latent import GaussianSampler

        return ar.head.sample(out, None, GaussianSampler(0.0), None)  # (B, *E)
    return out[..., :cb].argmax(-1)  # (B, *E)


@torch.inference_mode()
def time_cached_ar(
    ar: Any,
    text: Tensor,
    tl: Tensor,
    prompt: Tensor,
    pl: Tensor,
    steps: int,
    floor: MatvecPass | None = None,
    floor_every: int = 25,
) -> tuple[float, list[float], list[float], Tensor, Tensor, Tensor]:
    """Cached decoding of ``steps`` AR steps after a prompt (B, P, ...) of lengths ``pl``.

    Every ``floor_every`` steps one ``floor`` pass is timed too, so that steps and floor see
    the same machine load. Returns (prefill s, per-step s, floor pass s, steps (B, T, *E),
    the AR's audio input ``[BOS, prompt]`` (B, P + 1, *E), its lengths (B,)).
    """
    device = text.device
    p_steps, p_lens, _ = ar.layout.to_steps(prompt, pl)
    audio_in, in_lens = ar.layout.with_bos(p_steps, p_lens)  # (B, P + 1, *E)
    capacity = text.shape[1] + audio_in.shape[1] + steps
    sync(device)
    t0 = time.perf_counter()
    dec = ar.decoding(text)  # what generate steps on (VALL-E X: steps tagged with a language)
    logits, cache = dec.prefill(text, tl, audio_in, in_lens, capacity=capacity)
    ids = next_input(ar, logits)  # (B, *E) never EOS: every run makes `steps` steps
    sync(device)
    prefill = time.perf_counter() - t0
    codes = ids.new_zeros(text.shape[0], steps, *ids.shape[1:])  # (B, T, *E)
    codes[:, 0] = ids
    index = in_lens.clone()
    ones = torch.ones_like(index)
    times, floors = [], []
    for n in range(1, steps):
        t0 = time.perf_counter()
        logits = dec.step(ids, dec.audio_positions(ones, 1, index), cache)
        ids = next_input(ar, logits)
        codes[:, n] = ids
        sync(device)
        times.append(time.perf_counter() - t0)
        index += 1
        if floor is not None and n % floor_every == 1:
            floors.append(floor())
    return prefill, times, floors, codes, audio_in, in_lens


@torch.inference_mode()
def time_recomputed_ar(
    ar: Any,
    text: Tensor,
    tl: Tensor,
    audio_in: Tensor,
    in_lens: Tensor,
    codes: Tensor,
    points: int,
) -> float:
    """Mean seconds per step of recomputation over the ``T = codes.shape[1]`` steps of
    ``codes`` (B, T, *E) after ``audio_in`` (B, P + 1, *E): ``points`` lengths timed, a
    quadratic in the length fitted and averaged over all steps."""
    device = text.device
    T = codes.shape[1]
    lengths = sorted({int(round(x)) for x in np.linspace(0, T - 1, max(1, points))})
    seconds = []
    for n in lengths:
        a = torch.cat([audio_in, codes[:, :n]], dim=1)  # (B, P + 1 + n, *E)
        sync(device)
        t0 = time.perf_counter()
        h = ar.hidden(text, tl, a, in_lens + n)  # (B, P + 1 + n, D)
        ar.head(h[:, -1])  # (B, *E, V): the last position's output, as a step needs
        sync(device)
        seconds.append(time.perf_counter() - t0)
    if len(lengths) == 1:
        return seconds[0]
    poly = np.polynomial.Polynomial.fit(lengths, seconds, deg=min(2, len(lengths) - 1))
    return float(np.mean(poly(np.arange(T))))


@torch.inference_mode()
def time_nar(
    nar: Any,
    text: Tensor,
    tl: Tensor,
    prompt: Tensor,
    pl: Tensor,
    first: Tensor,
    stages_timed: int | None,
) -> tuple[float, int]:
    """Seconds for all ``Q - 1`` NAR stages after the first codebook ``first`` (B, T), scaled
    from the timed ones (every stage costs the same), and how many were timed."""
    device = text.device
    Q = nar.num_codebooks
    timed = Q - 1 if stages_timed is None else max(1, min(stages_timed, Q - 1))
    B, T = first.shape
    codes = torch.zeros(B, T, Q, dtype=torch.long, device=device)  # (B, T, Q)
    codes[..., 0] = first
    lens = torch.full((B,), T, dtype=torch.long, device=device)
    sync(device)
    t0 = time.perf_counter()
    for stage in range(1, timed + 1):
        codes[..., stage] = nar(text, tl, prompt, pl, codes, lens, stage).argmax(-1)
    sync(device)
    return (time.perf_counter() - t0) * (Q - 1) / timed, timed


def time_refine(refine: Any, frames: Tensor) -> float:
    """Seconds of one post-net pass over mel ``frames`` (B, T, F), every frame valid (run as
    the benchmark always has, outside inference mode)."""
    device = frames.device
    sync(device)
    t0 = time.perf_counter()
    refine(frames, torch.ones(frames.shape[:2], dtype=torch.bool, device=device))
    sync(device)
    return time.perf_counter() - t0
