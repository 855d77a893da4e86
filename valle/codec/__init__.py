"""Acoustic tokenizers and mel tools.

The ``Codec`` protocol; EnCodec through transformers; RVQ codec merging (VALL-E R) of either RVQ
codec; the log-mel front end, vocoders (Griffin-Lim, HiFi-GAN) and the offline mel residual-VQ
codec; the codec registry (``@register_codec``, :mod:`valle.codec.registry`).
"""

from valle.codec.base import Codec
from valle.codec.encodec import EncodecCodec, encodec_throughput
from valle.codec.mel import LogMel, MelConfig
from valle.codec.mel_rvq import MelRVQCodec, MelRVQConfig
from valle.codec.merging import MergedRVQCodec, encode_merged
from valle.codec.registry import load_codec, register_codec, registered_codecs
from valle.codec.vocoder import GriffinLimVocoder, HifiGanVocoder, Vocoder

__all__ = [
    "Codec",
    "EncodecCodec",
    "GriffinLimVocoder",
    "HifiGanVocoder",
    "LogMel",
    "MelConfig",
    "MelRVQCodec",
    "MelRVQConfig",
    "MergedRVQCodec",
    "Vocoder",
    "encode_merged",
    "encodec_throughput",
    "load_codec",
    "register_codec",
    "registered_codecs",
]
