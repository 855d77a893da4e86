"""Multi-head self-attention over ``F.scaled_dot_product_attention`` with a KV cache.

Shape legend: B batch, L query positions, K key positions, H heads, E head width, D model width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KV = tuple[Tensor, Tensor]  # keys, values: (B, H, K, E) each


class MultiHeadAttention(nn.Module):
    """Self-attention; ``mask`` (B, L, K) bool says which keys each query may see (True = may)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None, past: KV | None = None) -> tuple[Tensor, KV]:
        """Attend from ``x`` (B, L, D) to ``past`` keys followed by ``x``'s own keys.

        Returns the output (B, L, D) and the keys/values of past + new positions, for a cache.
        """
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, self.head_dim).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, E)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, K, E)
            v = torch.cat([past[1], v], dim=2)
        attn_mask = None if mask is None else mask.unsqueeze(1)  # (B, 1, L, K)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, L, E)
        y = y.transpose(1, 2).reshape(B, L, D)  # (B, L, D)
        return self.out(y), (k, v)
