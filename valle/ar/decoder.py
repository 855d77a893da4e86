"""The autoregressive decoder: a decoder-only LM over ``[phonemes ; BOS, steps]``.

Shape legend: B batch, S text tokens, T frames, Q codebooks, N AR steps, D model width,
``*E`` the layout's step shape.

VALL-E Sec 4.2.1: the AR model is conditioned on the phoneme sequence and predicts the first
codebook's codes one frame at a time; text and audio get separate sinusoidal positional
encodings; the phonemes form a prefix the audio attends to. The decoder does not know what a
step is: the layout (:mod:`valle.ar.layouts`) gives the BOS input, the targets and the loss
mask, the head (:mod:`valle.ar.heads`) its output, loss and sampling, the stop policy
(:mod:`valle.ar.stops`) when generation ends, and the mask policy (:mod:`valle.ar.masks`)
which keys a position may see.

Packing: a batch is ``[text (S, right-padded) ; audio (N, right-padded)]``; padding columns
are masked as keys, and positions count inside each segment per row
(:class:`~valle.modules.positions.SegmentPositions`), so rows of different lengths never
need shifting and a batch computes what each item computes alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from valle.ar.alignment_prior import GuidedAttentionPrior, prior_term
from valle.ar.generate import generate_ar
from valle.ar.heads import ARHead
from valle.ar.layouts import AcousticLayout
from valle.ar.masks import MaskPolicy, attention_mask
from valle.ar.stops import StopPolicy
from valle.data import batch as B_
from valle.modules.embedding import SinusoidalPositionalEncoding, TokenEmbedding
from valle.modules.positions import AUDIO, TEXT, SegmentPositions
from valle.modules.transformer import KVCache, TransformerStack
from valle.sampling import Greedy, TokenSampler

__all__ = ["ARDecoder"]


def check_lengths(text_tokens: Tensor, text_lens: Tensor) -> None:
    """Every row needs at least one text token (the audio attends to it)."""
    if text_tokens.dim() != 2:
        raise ValueError(f"text_tokens must be (B, S), got shape {tuple(text_tokens.shape)}")
    if text_lens.shape != text_tokens.shape[:1]:
        raise ValueError(f"text_lens must be (B,), got {tuple(text_lens.shape)}")
    if text_lens.numel() and int(text_lens.min()) < 1:
        raise ValueError("every utterance needs at least one text token; drop empty transcripts")


class ARDecoder(nn.Module):
    """Decoder-only AR over phonemes and the layout's steps.

    Build it from a config with :func:`valle.ar.builders.build_ar_decoder`, or from parts to
    swap a component. ``audio_embedding`` defaults to the layout's; ``stop`` must fit the
    layout (e.g. :class:`~valle.ar.stops.EosStop` with its EOS class). ``default_sampler``
    is used when ``generate`` gets none (greedy when built from parts). ``text_conditioner``
    (optional) maps ``(text embeddings (B, S, D), language (B,) | None)`` to new text
    embeddings; VALL-E X adds its language embedding that way.
    """

    def __init__(
        self,
        *,
        text_vocab_size: int,
        backbone: TransformerStack,
        mask: MaskPolicy,
        layout: AcousticLayout,
        head: ARHead,
        stop: StopPolicy,
        audio_embedding: nn.Module | None = None,
        dropout: float = 0.0,
        max_len_ratio: float = 20.0,
        text_conditioner: nn.Module | None = None,
        default_sampler: TokenSampler | None = None,
        alignment_prior: GuidedAttentionPrior | None = None,
    ) -> None:
        super().__init__()
        d = backbone.d_model
        self.default_sampler: Any = default_sampler or Greedy()
        self.text_embedding = TokenEmbedding(text_vocab_size, d)
        self.audio_embedding = (
            layout.embedding(d) if audio_embedding is None else audio_embedding
        )  # steps (B, N, *E) -> (B, N, D)
        self.text_position = SinusoidalPositionalEncoding(d, dropout)
        self.audio_position = SinusoidalPositionalEncoding(d, dropout)
        self.text_conditioner = text_conditioner
        self.backbone = backbone
        self.mask = mask
        self.layout = layout
        self.head = head
        self.stop = stop
        self.max_len_ratio = max_len_ratio
        self.alignment_prior = alignment_prior

    @property
    def eos_id(self) -> int:
        """The layout's EOS class (discrete layouts only; for callers that mask it)."""
        return int(self.layout.eos_id)  # type: ignore[attr-defined]

    def with_bos(self, steps: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """``[BOS, s_1 .. s_N]`` and lengths + 1 (the layout's BOS)."""
        return self.layout.with_bos(steps, lens)

    # ------------------------------------------------------------------ embedding

    def embed_text(
        self, text_tokens: Tensor, text_lens: Tensor, language: Tensor | None = None
    ) -> tuple[Tensor, SegmentPositions]:
        check_lengths(text_tokens, text_lens)
        pos = SegmentPositions.span(TEXT, text_lens, text_tokens.shape[1])
        x = self.text_embedding(text_tokens)  # (B, S, D)
        if self.text_conditioner is not None:
            x = self.text_conditioner(x, language)
        return self.text_position(x, pos.index), pos

    @staticmethod
    def audio_positions(
        lens: Tensor, length: int, start: Tensor | None = None, align: Tensor | None = None
    ) -> SegmentPositions:
        """Descriptors of ``length`` audio columns, indices from ``start`` (B,) (default 0),
        with an optional aligned-phoneme index ``align`` (B, length)."""
        return SegmentPositions.span(AUDIO, lens, length, start, align)

    def embed_audio(self, steps: Tensor, pos: SegmentPositions) -> Tensor:
        """Audio inputs (B, N, *E) at positions ``pos`` (B, N) -> embeddings (B, N, D)."""
        return self.audio_position(self.audio_embedding(steps), pos.index)

    # ------------------------------------------------------------------ teacher forcing

    def hidden(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Tensor | None = None,
        audio_pos: SegmentPositions | None = None,
    ) -> Tensor:
        """Teacher-forced hidden states at the audio positions (B, N, D)."""
        x_text, p_text = self.embed_text(text_tokens, text_lens, language)
        if audio_pos is None:
            audio_pos = self.audio_positions(audio_lens, audio_in.shape[1])
        x_audio = self.embed_audio(audio_in, audio_pos)
        x = torch.cat([x_text, x_audio], dim=1)  # (B, S + N, D)
        pos = p_text.cat(audio_pos)
        h = self.backbone(x, attention_mask(self.mask, pos, pos))
        return h[:, text_tokens.shape[1] :]  # (B, N, D)

    def forward(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Tensor | None = None,
        audio_pos: SegmentPositions | None = None,
    ) -> Tensor:
        """Teacher-forced head output at the audio positions, e.g. logits (B, N, *E, V)."""
        return self.head(
            self.hidden(text_tokens, text_lens, audio_in, audio_lens, language, audio_pos)
        )

    def loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """The head's loss on the layout's targets (VALL-E Sec 4.2.1: next code, with EOS).

        Returns the loss and detached metrics (``loss``, ``acc``, ... from the head); an
        auxiliary loss adds its term and metrics here.
        """
        tf = self.layout.teacher_forcing(batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS])
        text, text_lens = batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS]
        prior = self.alignment_prior if self.training else None
        with prior_term(prior, self.backbone) as term:
            out = self(text, text_lens, tf.inputs, tf.lens, batch.get(B_.LANGUAGE))
        loss, metrics = self.head.loss(out, tf.targets, tf.mask)
        return term.add(loss, metrics, text.shape[1], text_lens, tf.lens), metrics

    # ------------------------------------------------------------------ incremental decoding

    def prefill(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Tensor | None = None,
        capacity: int = 0,
        audio_pos: SegmentPositions | None = None,
    ) -> tuple[Tensor, KVCache]:
        """Run text and the audio so far; the head's output (B, *E, ...) after each row's last
        audio input, and the filled cache.

        ``capacity``: positions (text + audio, all steps to come) to preallocate the cache for.
        """
        x_text, p_text = self.embed_text(text_tokens, text_lens, language)
        if audio_pos is None:
            audio_pos = self.audio_positions(audio_lens, audio_in.shape[1])
        x_audio = self.embed_audio(audio_in, audio_pos)
        cache = KVCache(capacity)
        query = p_text.cat(audio_pos)
        keys = cache.extend(query)
        h = self.backbone(
            torch.cat([x_text, x_audio], 1), attention_mask(self.mask, query, keys), cache
        )
        last = text_tokens.shape[1] + audio_lens - 1  # (B,) column of the last audio input
        h_last = h[torch.arange(h.shape[0], device=h.device), last]  # (B, D)
        return self.head(h_last), cache

    def decoding(self, text_tokens: Tensor, language: Any = None) -> Any:
        """What incremental decoding (``prefill``/``audio_positions``/``step``) of one call
        runs on: this AR itself; an AR whose steps need per-call facts returns an object with
        the same methods that adds them (VALL-E X: :class:`valle.ar.language.LanguageDecoding`).
        Timing and tools that drive ``step`` themselves call this instead of ``self``."""
        return self

    def layout_step(self, step: Tensor) -> Tensor:
        """The layout's step inside a fed step (B, *E): the step itself."""
        return step

    def step(self, step_in: Tensor, pos: SegmentPositions, cache: KVCache) -> Tensor:
        """Feed one step per row (B, *E) at positions ``pos`` (B, 1); the head's output (B, *E, ...).

        The step's keys/values and descriptors are written into ``cache`` in place; its mask
        is one (B, 1, K) row. ``pos`` comes from :meth:`audio_positions` (it may carry an
        alignment that the mask policy reads).
        """
        if cache.positions is None:
            raise ValueError("call prefill() before step()")
        x = self.embed_audio(step_in[:, None], pos)  # (B, 1, D)
        keys = cache.extend(pos)
        h = self.backbone(x, attention_mask(self.mask, pos, keys), cache)  # (B, 1, D)
        return self.head(h[:, 0])

    def generate(self, *args: Any, **kwargs: Any) -> list[Tensor]:
        """See :func:`valle.ar.generate.generate_ar`."""
        return generate_ar(self, *args, **kwargs)
