"""The autoregressive decoder: a decoder-only LM over ``[phonemes ; BOS, codebook-1 codes]``.

Shape legend: B batch, S text tokens, T frames, Q codebooks, N AR steps, D model width,
V head classes (codebook_size + 1, the last being EOS).

VALL-E Sec 4.2.1: the AR model is conditioned on the phoneme sequence and predicts the first
codebook's codes one frame at a time; text and audio get separate sinusoidal positional
encodings; the phonemes form a prefix the audio attends to. Which keys a position may see is
the mask policy's business (:mod:`valle.ar.masks`), what one step predicts the layout's
(:mod:`valle.ar.layouts`) and the loss the head's (:mod:`valle.ar.heads`).

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

from valle.ar.heads import HEADS, CategoricalHead
from valle.ar.layouts import LAYOUTS, AcousticLayout, GroupedCodeLayout
from valle.ar.masks import MASK_POLICIES, MaskPolicy, attention_mask
from valle.config import ARConfig, VocabConfig
from valle.data import batch as B_
from valle.modules.embedding import SinusoidalPositionalEncoding, TokenEmbedding
from valle.modules.positions import AUDIO, TEXT, SegmentPositions
from valle.modules.transformer import KVCache, TransformerStack
from valle.registry import choose_component
from valle.sampling import Greedy, TokenSampler, build_sampler

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
    """Decoder-only AR over phonemes and first-codebook codes.

    Build it from a config with :meth:`from_config`, or from parts to swap a component.
    ``default_sampler`` is used when ``generate`` gets none (the variant's choice; greedy
    when built from parts). ``text_conditioner`` (optional) maps ``(text embeddings (B, S, D), language (B,) | None)``
    to new text embeddings; VALL-E X adds its language embedding that way.
    """

    def __init__(
        self,
        *,
        text_vocab_size: int,
        codebook_size: int,
        backbone: TransformerStack,
        mask: MaskPolicy,
        layout: AcousticLayout,
        head: CategoricalHead,
        dropout: float = 0.0,
        max_len_ratio: float = 20.0,
        text_conditioner: nn.Module | None = None,
        default_sampler: TokenSampler | None = None,
    ) -> None:
        super().__init__()
        d = backbone.d_model
        self.default_sampler: TokenSampler = default_sampler or Greedy()
        self.codebook_size = codebook_size
        self.eos_id = codebook_size  # head class and audio input id
        self.bos_id = codebook_size + 1  # audio input id only
        self.text_embedding = TokenEmbedding(text_vocab_size, d)
        self.audio_embedding = layout.embedding(codebook_size + 2, d)  # steps (B, N, *E)
        self.text_position = SinusoidalPositionalEncoding(d, dropout)
        self.audio_position = SinusoidalPositionalEncoding(d, dropout)
        self.text_conditioner = text_conditioner
        self.backbone = backbone
        self.mask = mask
        self.layout = layout
        self.head = head
        self.max_len_ratio = max_len_ratio

    @classmethod
    def from_config(cls, cfg: ARConfig, vocab: VocabConfig, **parts: Any) -> ARDecoder:
        """Build from a config; keyword ``parts`` (e.g. ``text_conditioner=``) are passed on."""
        b = cfg.backbone
        head_cls = choose_component(HEADS, cfg.head, "AR head")
        layout_cls = choose_component(LAYOUTS, cfg.layout, "acoustic layout")
        layout = layout_cls(cfg.group_size) if layout_cls is GroupedCodeLayout else layout_cls()
        return cls(
            text_vocab_size=vocab.text_vocab_size,
            codebook_size=vocab.codebook_size,
            backbone=TransformerStack(b.num_layers, b.d_model, b.num_heads, b.ffn_dim, b.dropout),
            mask=choose_component(MASK_POLICIES, cfg.mask, "AR mask policy")(),
            layout=layout,
            head=head_cls(b.d_model, vocab.codebook_size + 1, layout.step_shape),
            dropout=b.dropout,
            max_len_ratio=cfg.max_len_ratio,
            default_sampler=build_sampler(
                cfg.sampler.kind,
                temperature=cfg.sampler.temperature,
                top_k=cfg.sampler.top_k,
                top_p=cfg.sampler.top_p,
                window=cfg.sampler.window,
                threshold=cfg.sampler.threshold,
            ),
            **parts,
        )

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

    def embed_audio(
        self, steps: Tensor, lens: Tensor, start: Tensor | None = None
    ) -> tuple[Tensor, SegmentPositions]:
        """Audio input ids (B, N, *E) -> embeddings (B, N, D); indices start at ``start`` (B,)."""
        pos = SegmentPositions.span(AUDIO, lens, steps.shape[1], start)
        return self.audio_position(self.audio_embedding(steps), pos.index), pos

    def with_bos(self, steps: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """``[BOS, s_1 .. s_N]`` (B, N+1, *E) and lengths + 1."""
        bos = steps.new_full((steps.shape[0], 1, *steps.shape[2:]), self.bos_id)  # (B, 1, *E)
        return torch.cat([bos, steps], dim=1), lens + 1

    # ------------------------------------------------------------------ teacher forcing

    def forward(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Tensor | None = None,
    ) -> Tensor:
        """Teacher-forced logits at the audio positions: (B, N, *E, V) for inputs (B, N, *E)."""
        x_text, p_text = self.embed_text(text_tokens, text_lens, language)
        x_audio, p_audio = self.embed_audio(audio_in, audio_lens)
        x = torch.cat([x_text, x_audio], dim=1)  # (B, S + N, D)
        pos = p_text.cat(p_audio)
        h = self.backbone(x, attention_mask(self.mask, pos, pos))
        return self.head(h[:, text_tokens.shape[1] :])  # (B, N, *E, V)

    def loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Next-code cross entropy on the audio part (with EOS), VALL-E Sec 4.2.1."""
        steps, lens, valid = self.layout.to_steps(batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS])
        audio_in, in_lens = self.with_bos(steps, lens)  # (B, N+1, *E)
        rows = torch.arange(steps.shape[0], device=lens.device)
        targets = torch.cat([steps, torch.zeros_like(audio_in[:, :1])], dim=1)  # (B, N+1, *E)
        targets[rows, lens] = self.eos_id  # the step after the last is EOS
        mask = torch.cat([valid, torch.zeros_like(valid[:, :1])], dim=1)  # (B, N+1, *E)
        mask[rows, lens] = True
        logits = self(
            batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS], audio_in, in_lens, batch.get(B_.LANGUAGE)
        )
        return self.head.loss(logits, targets, mask)

    # ------------------------------------------------------------------ incremental decoding

    def prefill(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Tensor | None = None,
        capacity: int = 0,
    ) -> tuple[Tensor, KVCache]:
        """Run text and the audio so far; logits (B, *E, V) after each row's last audio input.

        ``capacity``: positions (text + audio, all steps to come) to preallocate the cache for.
        """
        x_text, p_text = self.embed_text(text_tokens, text_lens, language)
        x_audio, p_audio = self.embed_audio(audio_in, audio_lens)
        cache = KVCache(capacity)
        pos = cache.extend(p_text.cat(p_audio))
        h = self.backbone(
            torch.cat([x_text, x_audio], 1), attention_mask(self.mask, pos, pos), cache
        )
        last = text_tokens.shape[1] + audio_lens - 1  # (B,) column of the last audio input
        h_last = h[torch.arange(h.shape[0], device=h.device), last]  # (B, D)
        return self.head(h_last), cache

    def step(self, ids: Tensor, index: Tensor, cache: KVCache) -> Tensor:
        """Feed one step per row (B, *E) at in-segment index (B,); returns logits (B, *E, V).

        The step's keys/values and descriptors are written into ``cache`` in place; its mask
        is one (B, 1, K) row.
        """
        if cache.positions is None:
            raise ValueError("call prefill() before step()")
        ones = torch.ones_like(index)
        x, pos = self.embed_audio(ids[:, None], ones, index)  # (B, 1, D)
        keys = cache.extend(pos)
        h = self.backbone(x, attention_mask(self.mask, pos, keys), cache)  # (B, 1, D)
        return self.head(h[:, 0])

    def generate(self, *args: Any, **kwargs: Any) -> list[Tensor]:
        """See :func:`valle.ar.generate.generate_ar`."""
        from valle.ar.generate import generate_ar

        return generate_ar(self, *args, **kwargs)
