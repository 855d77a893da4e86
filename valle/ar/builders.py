"""Build the AR decoder and its components from an :class:`~valle.ar.config.ARConfig`.

The one place that turns settings into objects (audiocraft's ``builders.py`` pattern): each
component section's kind class makes its component (``cfg.layout.build(...)``), and this
module passes each one what it needs from the others (the head gets the layout's classes and
its embedding to tie to; the stop gets the layout's EOS). Nothing here asks which kind it
holds.
"""

from __future__ import annotations

from typing import Any

from valle.ar.config import ARConfig
from valle.ar.decoder import ARDecoder
from valle.ar.step_dropout import add_step_dropout
from valle.config import VocabConfig
from valle.modules.transformer import TransformerStack

__all__ = ["build_ar_decoder"]


def build_ar_decoder(
    cfg: ARConfig, vocab: VocabConfig, decoder_class: type[ARDecoder] = ARDecoder, **parts: Any
) -> ARDecoder:
    """The decoder ``cfg`` describes; keyword ``parts`` (e.g. ``text_conditioner=``) are passed
    on to ``decoder_class`` (an :class:`ARDecoder` subclass that takes more parts)."""
    b = cfg.backbone
    layout = cfg.layout.build(vocab.codebook_size)
    embedding = add_step_dropout(layout.embedding(b.d_model), cfg.step_dropout)
    return decoder_class(
        text_vocab_size=vocab.text_vocab_size,
        backbone=TransformerStack.from_config(b),
        mask=cfg.mask.build(),
        layout=layout,
        audio_embedding=embedding,
        head=cfg.head.build(b.d_model, layout, embedding),
        stop=cfg.stop.build(layout),
        dropout=b.dropout,
        max_len_ratio=cfg.max_len_ratio,
        default_sampler=cfg.sampler.build(),
        alignment_prior=None if cfg.alignment_prior is None else cfg.alignment_prior.build(),
        **parts,
    )
