"""Pre-norm transformer layer and stack, with a KV cache for incremental decoding.

Shape legend: B batch, L query positions, K key positions, D model width.

Norms are pluggable (:mod:`valle.modules.norms`): a ``norm_factory(d_model)`` makes every
norm of the stack, and each is called with the stack's ``cond`` (B, D) — ``None`` for plain
LayerNorm, the stage embedding for AdaLN (VALL-E Sec 4.2.2).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from valle.modules.attention import KV, MultiHeadAttention
from valle.modules.norms import LayerNorm
from valle.modules.positions import SegmentPositions

NormFactory = Callable[[int], nn.Module]


class KVCache:
    """Keys/values of every layer for the positions decoded so far, plus their descriptors."""

    def __init__(self) -> None:
        self.layers: dict[int, KV] = {}
        self.positions: SegmentPositions | None = None  # descriptors of the cached keys

    def __len__(self) -> int:
        return 0 if self.positions is None else len(self.positions)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TransformerLayer(nn.Module):
    """``x + Attn(Norm(x)); x + FFN(Norm(x))`` (pre-norm)."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        norm_factory: NormFactory = LayerNorm,
    ) -> None:
        super().__init__()
        self.norm1 = norm_factory(d_model)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.norm2 = norm_factory(d_model)
        self.ffn = FeedForward(d_model, ffn_dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, mask: Tensor | None, past: KV | None = None, cond: Tensor | None = None
    ) -> tuple[Tensor, KV]:
        a, kv = self.attn(self.norm1(x, cond), mask, past)
        x = x + self.dropout(a)  # (B, L, D)
        x = x + self.dropout(self.ffn(self.norm2(x, cond)))
        return x, kv


class TransformerStack(nn.Module):
    """``num_layers`` pre-norm layers and a final norm."""

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        norm_factory: NormFactory = LayerNorm,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(
            TransformerLayer(d_model, num_heads, ffn_dim, dropout, norm_factory)
            for _ in range(num_layers)
        )
        self.final_norm = norm_factory(d_model)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        cache: KVCache | None = None,
        cond: Tensor | None = None,
    ) -> Tensor:
        """Run ``x`` (B, L, D); ``mask`` (B, L, K) covers cached keys followed by ``x``'s keys.

        With a ``cache`` the new keys/values are appended to it (the caller keeps
        ``cache.positions`` in step).
        """
        for i, layer in enumerate(self.layers):
            past = cache.layers.get(i) if cache is not None else None
            x, kv = layer(x, mask, past, cond)
            if cache is not None:
                cache.layers[i] = kv
        return self.final_norm(x, cond)
