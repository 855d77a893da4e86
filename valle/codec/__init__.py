"""Acoustic tokenizers: the ``Codec`` protocol, EnCodec, and RVQ codec merging (VALL-E R)."""

from valle.codec.base import Codec
from valle.codec.encodec import EncodecCodec, encodec_throughput
from valle.codec.merging import MergedEncodecCodec, encode_merged

__all__ = ["Codec", "EncodecCodec", "MergedEncodecCodec", "encode_merged", "encodec_throughput"]
