"""Timed decoding through the model's own API: cached AR steps, recomputed AR steps, NAR stages.

Shape legend: B batch, S text tokens, P prompt frames (steps after the layout), T AR steps,
Q codebooks, E the layout's per-step shape (empty for one code, (G,) for a group of codes,
(F,) for a mel step), D model width.

Every function drives the AR and NAR as generation does; only the choice of the next input
differs, so that each run makes exactly the number of steps asked for:

- :func:`time_cached_ar`: the layout's ``to_steps`` / ``with_bos``, then ``ar.decoding(text)``
  (what ``generate`` steps on; VALL-E X's tags the steps with a language), its ``prefill``
  once and ``step`` per step, each timed;
- :func:`time_recomputed_ar`: no cache: the decoding's ``prefill`` over ``[text ; BOS,
  prompt, steps so far]`` (the whole prefix and the head at its last position, which is what a
  decoder without a cache runs per step), timed at a few lengths and fitted by a quadratic
  (linear layers + quadratic attention);
- :func:`time_nar`: the NAR's forward per stage, scaled to all stages;
- :func:`time_refine`: a mel model's post-net over the whole output (MELLE);
- :func:`time_static_ar`: the cached steps again through a fixed-shape
  :class:`~valle.ar.static_step.StaticARStep`, captured as one CUDA graph on a GPU (issue 14:
  one launch per step instead of hundreds), run eagerly elsewhere.

The step fed back is drawn by the decoding's own head (``head.start`` / ``head.sample``, as
:func:`~valle.ar.generate.generate_ar` does; a phoneme-aligned AR's head also moves its pointer)
with :func:`feedback_sampler`: the best code other than EOS, or a continuous head's mean step
(MELLE; its stop flag is not read), so that no row ends early.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from valle.eval.clock import sync
from valle.eval.matvec_floor import MatvecPass

__all__ = [
    "NeverStopGreedy",
    "feedback_sampler",
    "time_cached_ar",
    "time_nar",
    "time_recomputed_ar",
    "time_refine",
    "time_static_ar",
]


class NeverStopGreedy:
    """Token sampler (logits (B, V), history, generator) -> (B,): the best of the first
    ``codebook_size`` classes, so a categorical head's EOS (the last class) is never drawn."""

    def __init__(self, codebook_size: int) -> None:
        self.codebook_size = codebook_size

    def __call__(self, logits: Tensor, history: Any, generator: Any) -> Tensor:
        return logits[:, : self.codebook_size].argmax(-1)


def feedback_sampler(ar: Any) -> Any:
    """The sampler of the fed-back steps: :class:`NeverStopGreedy` over a discrete layout's
    codes, the mean (noise scale 0) of a continuous head."""
    if ar.layout.continuous:
        from valle.sampling.latent import GaussianSampler

        return GaussianSampler(0.0)
    return NeverStopGreedy(int(ar.layout.codebook_size))


def _decoding_inputs(
    ar: Any, text: Tensor, prompt: Tensor, pl: Tensor, steps: int, decoding: Any = None
) -> tuple[Any, Any, Any, Tensor, Tensor]:
    """What a timed decoding of ``steps`` steps after a prompt (B, P, ...) starts from, as
    :func:`~valle.ar.generate.generate_ar` makes it: the decoding (``decoding``, a model's
    per-call one such as the frame-aligned MELLE's frame track, else ``ar.decoding(text)``;
    VALL-E X: steps tagged with a language), the fed-back sampler, the head's memory and the
    AR's audio input ``[BOS, prompt]`` (B, P + 1, *E) with its lengths (B,)."""
    p_steps, p_lens, _ = ar.layout.to_steps(prompt, pl)
    audio_in, in_lens = ar.layout.with_bos(p_steps, p_lens)  # (B, P + 1, *E)
    dec = ar.decoding(text) if decoding is None else decoding
    memory = dec.head.start(p_steps, p_lens, steps)
    return dec, feedback_sampler(ar), memory, audio_in, in_lens


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
    decoding: Any = None,
) -> tuple[float, list[float], list[float], Tensor, Tensor, Tensor]:
    """Cached decoding of ``steps`` AR steps after a prompt (B, P, ...) of lengths ``pl``.

    Every ``floor_every`` steps one ``floor`` pass is timed too, so that steps and floor see
    the same machine load. Returns (prefill s, per-step s, floor pass s, the layout's steps
    (B, T, *E) (:meth:`layout_step` of each fed step),
    the AR's audio input ``[BOS, prompt]`` (B, P + 1, *E), its lengths (B,)).
    ``decoding``: see :func:`_decoding_inputs`.
    """
    device = text.device
    sync(device)
    t0 = time.perf_counter()
    dec, sampler, memory, audio_in, in_lens = _decoding_inputs(
        ar, text, prompt, pl, steps, decoding
    )
    capacity = text.shape[1] + audio_in.shape[1] + steps
    logits, cache = dec.prefill(text, tl, audio_in, in_lens, capacity=capacity)
    fed = dec.head.sample(logits, memory, sampler, None)  # never EOS: `steps` steps every run
    sync(device)
    prefill = time.perf_counter() - t0
    first = dec.layout_step(fed)  # (B, *E)
    codes = first.new_zeros(text.shape[0], steps, *first.shape[1:])  # (B, T, *E)
    codes[:, 0] = first
    index = in_lens.clone()
    ones = torch.ones_like(index)
    times, floors = [], []
    for n in range(1, steps):
        t0 = time.perf_counter()
        logits = dec.step(fed, dec.audio_positions(ones, 1, index), cache)
        fed = dec.head.sample(logits, memory, sampler, None)
        codes[:, n] = dec.layout_step(fed)
        sync(device)
        times.append(time.perf_counter() - t0)
        index += 1
        if floor is not None and n % floor_every == 1:
            floors.append(floor())
    return prefill, times, floors, codes, audio_in, in_lens


@torch.inference_mode()
def time_static_ar(
    ar: Any, text: Tensor, tl: Tensor, prompt: Tensor, pl: Tensor, steps: int, graph: bool
) -> tuple[list[float], str]:
    """Per-step seconds of ``steps`` AR steps (the first one made by the prefill, untimed, as
    in :func:`time_cached_ar`) through a :class:`~valle.ar.static_step.StaticARStep` of
    capacity ``S + P + 1 + steps``, and how it ran: ``"cuda graph"`` (``graph`` on a CUDA
    device; the capture is not timed) or ``"eager"``. Each timed step is the step (a graph
    replay) plus drawing the step fed back, as in :func:`time_cached_ar`."""
    from valle.ar.static_step import StaticARStep

    device = text.device
    dec, sampler, memory, audio_in, in_lens = _decoding_inputs(ar, text, prompt, pl, steps)
    st = StaticARStep(dec, text.shape[0], text.shape[1] + audio_in.shape[1] + steps)
    out = st.prefill(text, tl, audio_in, in_lens)
    st.step_in.copy_(dec.head.sample(out, memory, sampler, None))  # never EOS
    mode = "eager"
    if graph and device.type == "cuda":
        st.capture()
        mode = "cuda graph"
    times = []
    for _ in range(1, steps):
        sync(device)
        t0 = time.perf_counter()
        out = st.step()
        st.step_in.copy_(dec.head.sample(out, memory, sampler, None))
        sync(device)
        times.append(time.perf_counter() - t0)
    return times, mode


@torch.inference_mode()
def time_recomputed_ar(
    ar: Any,
    text: Tensor,
    tl: Tensor,
    audio_in: Tensor,
    in_lens: Tensor,
    codes: Tensor,
    points: int,
    decoding: Any = None,
) -> float:
    """Mean seconds per step of recomputation over the ``T = codes.shape[1]`` steps of
    ``codes`` (B, T, *E) after ``audio_in`` (B, P + 1, *E): ``points`` lengths timed, a
    quadratic in the length fitted and averaged over all steps. ``decoding``: see
    :func:`_decoding_inputs`."""
    device = text.device
    T = codes.shape[1]
    lengths = sorted({int(round(x)) for x in np.linspace(0, T - 1, max(1, points))})
    seconds = []
    dec = ar.decoding(text) if decoding is None else decoding
    for n in lengths:
        a = torch.cat([audio_in, codes[:, :n]], dim=1)  # (B, P + 1 + n, *E)
        sync(device)
        t0 = time.perf_counter()
        # the whole prefix and the head at its last position: one step without a cache
        dec.prefill(text, tl, a, in_lens + n, capacity=text.shape[1] + a.shape[1])
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
    cond = None  # a phoneme-aligned NAR: phoneme id 1 on every frame (same work as real ids)
    if getattr(getattr(nar, "audio_conditioner", None), "needs_frame_ids", False):
        cond = torch.ones(B, prompt.shape[1] + T, dtype=torch.long, device=device)
    sync(device)
    t0 = time.perf_counter()
    for stage in range(1, timed + 1):
        logits = nar(text, tl, prompt, pl, codes, lens, stage, audio_cond=cond)  # (B, T, V)
        codes[..., stage] = logits.argmax(-1)
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
