"""Autoregressive decoder: layouts, heads, stop policies, mask policies, batched generation."""

from valle.ar.builders import build_ar_decoder
from valle.ar.config import ARConfig
from valle.ar.decoder import ARDecoder
from valle.ar.generate import generate_ar, max_new_steps
from valle.ar.heads import CategoricalHead
from valle.ar.layouts import AcousticLayout, FirstCodebookLayout, GroupedCodeLayout
from valle.ar.masks import CausalMask, MaskPolicy, PrefixLMMask, attention_mask
from valle.ar.pointer import JointPointerHead, PointerARDecoder, PointerStop
from valle.ar.stops import DecodeContext, DurationStop, EosStop, StopPolicy

__all__ = [
    "ARConfig",
    "ARDecoder",
    "AcousticLayout",
    "CategoricalHead",
    "CausalMask",
    "DecodeContext",
    "DurationStop",
    "EosStop",
    "FirstCodebookLayout",
    "GroupedCodeLayout",
    "JointPointerHead",
    "MaskPolicy",
    "PointerARDecoder",
    "PointerStop",
    "PrefixLMMask",
    "StopPolicy",
    "attention_mask",
    "build_ar_decoder",
    "generate_ar",
    "max_new_steps",
]
