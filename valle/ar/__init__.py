"""Autoregressive decoder: mask policies, acoustic layouts, heads, batched generation."""

from valle.ar.decoder import ARDecoder
from valle.ar.generate import generate_ar, max_new_steps
from valle.ar.heads import CategoricalHead
from valle.ar.layouts import AcousticLayout, FirstCodebookLayout
from valle.ar.masks import CausalMask, MaskPolicy, PrefixLMMask, attention_mask

__all__ = [
    "ARDecoder",
    "AcousticLayout",
    "CategoricalHead",
    "CausalMask",
    "FirstCodebookLayout",
    "MaskPolicy",
    "PrefixLMMask",
    "attention_mask",
    "generate_ar",
    "max_new_steps",
]
