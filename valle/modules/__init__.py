"""Shared building blocks: transformer layers with a KV cache, AdaLN, embeddings, positions."""

from valle.modules.attention import MultiHeadAttention
from valle.modules.embedding import SinusoidalPositionalEncoding, TokenEmbedding
from valle.modules.metrics import masked_token_loss
from valle.modules.norms import AdaptiveLayerNorm, LayerNorm
from valle.modules.positions import AUDIO, CONDITION, TEXT, SegmentPositions
from valle.modules.transformer import KVCache, TransformerLayer, TransformerStack

__all__ = [
    "AUDIO",
    "CONDITION",
    "TEXT",
    "AdaptiveLayerNorm",
    "KVCache",
    "LayerNorm",
    "MultiHeadAttention",
    "SegmentPositions",
    "SinusoidalPositionalEncoding",
    "TokenEmbedding",
    "TransformerLayer",
    "TransformerStack",
    "masked_token_loss",
]
