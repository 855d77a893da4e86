"""One AR decoding step with fixed shapes and fixed buffers, capturable as one CUDA graph.

Shape legend: B batch, S text tokens, C capacity (text + audio positions a call may hold),
H heads, E head width, ``*E`` the layout's step shape (``()`` one code, ``(G,)`` a group),
V classes.

Why (docs/performance.md, GPU): at batch 1 an AR step of the base model launches hundreds of
small kernels, and on a GPU the launches, not the weights, set its time. A CUDA graph replays
all of a step's kernels in one launch, but only if every replay has the same shapes and
reads and writes the same addresses. The incremental path (:meth:`ARDecoder.step` with a
growing :class:`~valle.modules.transformer.KVCache`) attends over K keys with K growing each
step. :class:`StaticARStep` runs the *same* ``step`` code of the decoding (its embedding,
mask policy, backbone and head, with the trained weights) on a
:class:`~valle.modules.static_cache.StaticKVCache`: keys are written at a device-side cursor
and attention reads all C slots, the slots not yet written masked out. Its inputs
(``step_in`` (B, *E), the in-segment ``index`` (B,)) and its output (``out``, e.g. logits
(B, *E, V)) live in fixed tensors; a step reads the one and writes the other, then moves the
cursor and the index on the device. No value is read back to the host inside a step.

Use::

    st = StaticARStep(ar.decoding(text), batch=B, capacity=S + P + 1 + steps)
    out = st.prefill(text, text_lens, audio_in, audio_lens)  # (B, *E, V), outside the graph
    st.capture()                # CUDA only: warm up on a side stream, record one step
    for n in range(steps):
        st.step_in.copy_(head.sample(out, ...))   # the step fed back (B, *E)
        out = st.step()         # graph replay (CUDA, captured) or the same step eagerly

``prefill`` may be called again for another utterance of the same B (and at most C
positions): it refills the same buffers, so a captured graph stays valid. A decoding that
carries per-call facts (VALL-E X's language ids, :class:`~valle.ar.language.LanguageDecoding`)
is bound with them: the graph reads those tensors, so another call's languages need a new
static step (or new values copied into the same tensors).

Discrete layouts only (``step_in`` holds code ids); a latent head's output (MELLE) is not a
tensor and is refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from valle.modules.static_cache import StaticKVCache

__all__ = ["StaticARStep"]


def _decoder_of(decoding: Any) -> Any:
    """The :class:`~valle.ar.decoder.ARDecoder` behind a decoding (itself, or its ``ar``)."""
    return getattr(decoding, "ar", decoding)


class StaticARStep:
    """A decoding step over fixed buffers for ``batch`` rows and ``capacity`` positions.

    Args:
        decoding: what incremental decoding runs on: ``ar.decoding(text)`` (an
            :class:`~valle.ar.decoder.ARDecoder` or an object with its ``prefill`` /
            ``audio_positions`` / ``step``, e.g. VALL-E X's language decoding).
        batch: B.
        capacity: C, every position (text + audio input, all steps to come) a call holds.

    Buffers (allocated here, never reallocated): ``cache`` (per layer keys/values
    (B, H, C, E) and descriptors (B, C)), ``step_in`` (B, *E) long, ``index`` (B,) long (the
    in-segment audio index the next fed step takes); ``out`` (the head's output, e.g.
    (B, *E, V)) is allocated by the first :meth:`prefill`.
    """

    def __init__(self, decoding: Any, batch: int, capacity: int) -> None:
        ar = _decoder_of(decoding)
        layout = decoding.layout
        if layout.continuous:
            raise ValueError(
                f"{type(layout).__name__}: a static step feeds code ids; continuous layouts "
                "(mel frames) are not supported"
            )
        layers = ar.backbone.layers
        attn = layers[0].attn
        weight = ar.text_embedding.weight  # (ids, D): the activations' dtype and device
        self.decoding = decoding
        self.batch = batch
        self.capacity = capacity
        self.cache = StaticKVCache(
            len(layers), batch, attn.num_heads, capacity, attn.head_dim, weight.dtype, weight.device
        )
        device = weight.device
        self.step_in = torch.zeros(batch, *layout.step_shape, dtype=torch.long, device=device)
        self.index = torch.zeros(batch, dtype=torch.long, device=device)  # (B,)
        self._ones = torch.ones(batch, dtype=torch.long, device=device)  # (B,) one new step
        self.out: Tensor | None = None  # (B, *E, V)
        self.graph: Any = None  # torch.cuda.CUDAGraph once captured

    @property
    def device(self) -> torch.device:
        return self.index.device

    @property
    def captured(self) -> bool:
        return self.graph is not None

    @torch.inference_mode()
    def prefill(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Tensor | None = None,
    ) -> Tensor:
        """Run the decoding's ``prefill`` over text (B, S) and the audio inputs (B, A, *E)
        (eager, variable shapes), copy its cache into the static buffers and its output into
        ``out``; the next fed step gets index ``audio_lens`` (B,). Returns ``out``."""
        if text_tokens.shape[0] != self.batch:
            raise ValueError(f"batch {text_tokens.shape[0]} != the static step's {self.batch}")
        out, cache = self.decoding.prefill(
            text_tokens, text_lens, audio_in, audio_lens, language, capacity=self.capacity
        )
        if not isinstance(out, Tensor):
            raise ValueError(f"the head's output is a {type(out).__name__}, not a tensor")
        if self.out is None:
            with torch.inference_mode(False):  # a normal tensor, like the other buffers
                self.out = torch.empty(out.shape, dtype=out.dtype, device=out.device)
        elif self.out.shape != out.shape or self.out.dtype != out.dtype:
            raise ValueError(f"head output {tuple(out.shape)} != {tuple(self.out.shape)}")
        self.cache.load(cache)
        self.out.copy_(out)
        self.index.copy_(audio_lens)
        return self.out

    def _run(self) -> None:
        """The step itself: only fixed-shape device ops on the static buffers."""
        assert self.out is not None
        pos = self.decoding.audio_positions(self._ones, 1, self.index)  # (B, 1)
        self.out.copy_(self.decoding.step(self.step_in, pos, self.cache))  # (B, *E, V)
        self.index.add_(1)
        self.cache.cursor.add_(1)

    @torch.inference_mode()
    def step(self) -> Tensor:
        """Feed ``step_in`` (B, *E) at ``index``; returns ``out`` (the head's output for the
        next step, e.g. logits (B, *E, V)), written in place. Replays the graph once
        captured, else runs eagerly (the same ops)."""
        if self.out is None:
            raise ValueError("call prefill() before step()")
        if len(self.cache) >= self.capacity:
            raise ValueError(f"static step full: all {self.capacity} positions are written")
        if self.graph is not None:
            self.graph.replay()
        else:
            self._run()
        self.cache.count(1)  # the host's count; the cursor moved on the device
        return self.out

    @torch.inference_mode()
    def capture(self, warmup: int = 3) -> None:
        """Record one step as a CUDA graph (after :meth:`prefill`; CUDA only).

        The warm-up steps run on a side stream (as ``torch.cuda.graphs`` asks, so that lazy
        initialisation and the allocator settle outside the capture); each writes only the
        slot at the cursor, which the next real step overwrites, and the cursor, the index and
        ``step_in`` are put back after each, so capturing changes no decoding state.
        """
        if self.device.type != "cuda":
            raise ValueError(f"capture() needs a CUDA device; this step is on {self.device}")
        if self.out is None:
            raise ValueError("call prefill() before capture()")
        if len(self.cache) >= self.capacity:
            raise ValueError("no free slot left to warm up and capture in")
        saved = [t.clone() for t in (self.cache.cursor, self.index, self.step_in)]

        def restore() -> None:
            for dst, src in zip((self.cache.cursor, self.index, self.step_in), saved, strict=True):
                dst.copy_(src)

        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(max(1, warmup)):
                self._run()
                restore()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._run()
        restore()  # capture records without running, but be sure
        self.graph = graph

    def buffers(self) -> list[Tensor]:
        """Every tensor a step reads or writes in place (for checks of address stability)."""
        c = self.cache
        kv = [t for pair in c.buffers for t in pair]
        fixed = [c.cursor, c.segment, c.index, c.valid, self.step_in, self.index]
        return kv + fixed + ([] if self.out is None else [self.out])
