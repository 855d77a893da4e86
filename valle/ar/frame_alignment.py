"""Frame-aligned conditioning of an AR over continuous frames: every step knows its phoneme.

Shape legend: B batch, S text tokens, T frames (= AR steps: one frame per step), D model width,
E the layout's step width, K position features (:data:`TRACK_FEATURES`).

VALL-E R (Sec 3.2) gives each AR step the phoneme it is aligned to, so the text is read from
the first step instead of being found by attention; RALL-E (Sec 3.2-3.3) predicts the
phonemes' durations before the speech and uses them to guide every step. Here the two ideas
condition an AR over continuous frames (MELLE's): given durations (the aligner's in training,
predicted or forced at inference), each frame gets

- the embedding of its aligned phoneme (the decoder's text embedding, shared),
- its position inside that phoneme (:func:`frame_track`: ``k / d``, ``1 / d`` and
  ``log(1 + k) / 3`` for the k-th of d frames),

mixed along the frame track by a small non-causal convolution stack (``lookahead``: the
phonemes and durations are known in advance, so a frame may see the coming phonemes; no speech
frame is seen). The sum is added to the step's input embedding: a step's input is its previous
frame (through the pre-net) plus the track of the frame it predicts (:class:`ConditionedInput`).

Why (issue 9, ``egs/mini/EXPERIMENTS.md``): the mini MELLE, which must find its place in the
text by attention, never read its text in the CPU budget; the same AR with the track speaks.

Generation packs the track into the steps the shared loop feeds
(:class:`FrameTrackDecoding`), as VALL-E R's decoding packs the pointer's phoneme.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from valle.ar.generate import DecodingOf
from valle.ar.pointer import durations_to_alignment, phoneme_ids
from valle.config import ConfigError, opt
from valle.modules.local_conv import LocalConvStack
from valle.modules.positions import SegmentPositions
from valle.modules.transformer import KVCache

__all__ = [
    "TRACK_FEATURES",
    "ConditionedInput",
    "FrameTrackConditioner",
    "FrameTrackConfig",
    "FrameTrackDecoding",
    "frame_track",
    "rescale_durations",
]

TRACK_FEATURES = 3  # K: k / d, 1 / d, log(1 + k) / 3


def frame_track(durations: Tensor, num_frames: int) -> tuple[Tensor, Tensor]:
    """Durations (B, S) (frames per token, 0 on padding) -> each frame's token index (B, T)
    and position features (B, T, K).

    The index is :func:`~valle.ar.pointer.durations_to_alignment`'s: frames at or after
    ``sum(durations[b])`` get ``S`` (past the text) and zero features. For the k-th frame of
    a token of d frames the features are ``[k / d, 1 / d, log(1 + k) / 3]``.
    """
    B, S = durations.shape
    d = durations.long().clamp(min=0)
    full = torch.full((B,), S, dtype=torch.long, device=d.device)
    index = durations_to_alignment(d, full, num_frames)  # (B, T) in 0..S
    if S == 0:
        return index, torch.zeros(B, num_frames, TRACK_FEATURES, device=d.device)
    safe = index.clamp(max=S - 1)
    start = (d.cumsum(-1) - d).gather(1, safe)  # (B, T) first frame of the frame's token
    dur = d.gather(1, safe).clamp(min=1).float()
    k = (torch.arange(num_frames, device=d.device) - start).float()
    feats = torch.stack([k / dur, 1.0 / dur, torch.log1p(k) / 3.0], -1)  # (B, T, K)
    return index, feats * (index < S)[..., None]


def rescale_durations(durations: Tensor, frames: Tensor) -> Tensor:
    """Durations (B, S) counted in one frame rate -> the same spans over ``frames`` (B,)
    frames of another (the aligner counts codec frames, a mel AR its mel frames): boundaries
    are scaled and rounded, so each row sums to ``frames`` exactly (0 stays 0 where the row
    sums to 0)."""
    d = durations.long().clamp(min=0)
    total = d.sum(-1, keepdim=True)  # (B, 1)
    ends = d.cumsum(-1).double() * frames[:, None].double() / total.clamp(min=1).double()
    ends = torch.round(ends).long()  # (B, S)
    return ends.diff(dim=1, prepend=torch.zeros_like(ends[:, :1]))


@dataclass(frozen=True)
class FrameTrackConfig:
    """Frame-aligned conditioning of a continuous-frame AR (needs the aligner's durations in
    training; a duration predictor or forced durations at inference)."""

    lookahead_layers: int = opt(
        3, "residual convolutions along the frame track (count; 0: none, no look-ahead)"
    )
    lookahead_kernel: int = opt(5, "their kernel (frames, odd)")

    def __post_init__(self) -> None:
        if self.lookahead_layers < 0:
            raise ConfigError(f"lookahead_layers must be >= 0, got {self.lookahead_layers}")
        if self.lookahead_kernel < 1 or self.lookahead_kernel % 2 == 0:
            raise ConfigError(f"lookahead_kernel must be odd, got {self.lookahead_kernel}")

    def build(self, text_embedding: nn.Module, d_model: int) -> FrameTrackConditioner:
        return FrameTrackConditioner(
            text_embedding, d_model, self.lookahead_layers, self.lookahead_kernel
        )


class FrameTrackConditioner(nn.Module):
    """(text tokens, durations) -> per-frame conditioning (B, T, D).

    ``text_embedding`` is the decoder's (shared, not owned: it is saved with the decoder).
    """

    def __init__(
        self, text_embedding: nn.Module, d_model: int, lookahead_layers: int, kernel: int
    ) -> None:
        super().__init__()
        self._text_embedding = [text_embedding]  # a list: not registered twice
        self.position = nn.Linear(TRACK_FEATURES, d_model)
        self.lookahead = (
            LocalConvStack(d_model, lookahead_layers, kernel) if lookahead_layers else None
        )

    def forward(
        self, text_tokens: Tensor, durations: Tensor, num_frames: int, lens: Tensor,
        unaligned: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        """Frames 0..T-1 of each row (``lens`` (B,) valid) -> (B, T, D).

        ``durations`` (B, S) count the frames of ``text_tokens`` (B, S) from frame 0.
        ``unaligned`` (B,): per row, a count of leading frames without a phoneme (a prompt
        without its transcript); their conditioning is 0 and the durations start after them.
        """
        if unaligned is not None and bool((unaligned > 0).any()):
            index, feats = _shifted_track(durations, num_frames, unaligned)
        else:
            index, feats = frame_track(durations, num_frames)
        has = (index >= 0) & (index < text_tokens.shape[1])  # (B, T)
        ids = phoneme_ids(text_tokens, index)  # PAD_ID outside the text
        x = self._text_embedding[0](ids) * has[..., None] + self.position(feats)
        valid = torch.arange(num_frames, device=lens.device) < lens[:, None]
        x = x * valid[..., None]
        if self.lookahead is not None:
            x = self.lookahead(x, lens)
        return x


def _shifted_track(durations: Tensor, num_frames: int, shift: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`frame_track` of frames ``shift[b]..`` of each row; earlier frames get index -1
    and zero features."""
    index, feats = frame_track(durations, num_frames)
    t = torch.arange(num_frames, device=shift.device)
    src = (t[None] - shift[:, None]).clamp(min=0)  # (B, T)
    index = torch.where(t[None] < shift[:, None], -1, index.gather(1, src))
    feats = feats.gather(1, src[..., None].expand_as(feats)) * (index >= 0)[..., None]
    return index, feats


class ConditionedInput(nn.Module):
    """Step input embedding that adds a per-step conditioning packed behind the step:
    ``(B, N, E + D) -> inner(x[..., :E]) + x[..., E:]`` (B, N, D)."""

    def __init__(self, inner: nn.Module, step_dim: int) -> None:
        super().__init__()
        self.inner = inner
        self.step_dim = step_dim

    @contextlib.contextmanager
    def drawing_from(self, generator: torch.Generator | None) -> Iterator[None]:
        """The inner pre-net's dropout masks from ``generator`` (see PreNet.drawing_from)."""
        draw = getattr(self.inner, "drawing_from", None)
        with draw(generator) if draw is not None else contextlib.nullcontext():
            yield

    def forward(self, steps: Tensor) -> Tensor:
        E = self.step_dim
        if steps.shape[-1] <= E:
            raise ValueError(
                f"a frame-aligned AR reads steps with their conditioning packed behind them "
                f"(..., {E} + D), got (..., {steps.shape[-1]}); generate through "
                "FrameTrackDecoding, which packs it"
            )
        return self.inner(steps[..., :E]) + steps[..., E:]


class FrameTrackDecoding(DecodingOf):
    """The :class:`~valle.ar.generate.Decodable` of one generate call of a frame-aligned AR:
    it packs the conditioning of every audio input (``cond`` (B, L, D), by the input's
    in-segment index: BOS and the prompt's frames, then the frames to make) behind the
    step the loop feeds."""

    def __init__(self, ar: Any, cond: Tensor) -> None:
        super().__init__(ar)
        self.cond = cond

    def _pack(self, steps: Tensor, index: Tensor) -> Tensor:
        """Steps (B, N, E) at audio indices (B, N) -> (B, N, E + D)."""
        L = self.cond.shape[1]
        idx = index.clamp(0, L - 1)[..., None].expand(*index.shape, self.cond.shape[-1])
        c = self.cond.gather(1, idx) * (index < L)[..., None]
        return torch.cat([steps, c.to(steps.dtype)], -1)

    def prefill(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Any = None,
        capacity: int = 0,
    ) -> tuple[Tensor, KVCache]:
        B, N = audio_in.shape[:2]
        index = torch.arange(N, device=audio_in.device).expand(B, N)
        packed = self._pack(audio_in, index)
        return self.ar.prefill(text_tokens, text_lens, packed, audio_lens, language, capacity)

    def step(self, step_in: Tensor, pos: SegmentPositions, cache: KVCache) -> Tensor:
        packed = self._pack(step_in[:, None], pos.index)[:, 0]  # (B, E + D)
        return self.ar.step(packed, pos, cache)

    def layout_step(self, step: Tensor) -> Tensor:
        return step[..., : self.ar.audio_embedding.step_dim]
