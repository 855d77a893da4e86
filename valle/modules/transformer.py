"""Pre-norm transformer layer and stack, with a KV cache for incremental decoding.

Shape legend: B batch, L query positions, K key positions, D model width.

Norms are pluggable (:mod:`valle.modules.norms`): a ``norm_factory(d_model)`` makes every
norm of the stack, and each is called with the stack's ``cond`` (B, D) — ``None`` for plain
LayerNorm, the stage embedding for AdaLN (VALL-E Sec 4.2.2).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from valle.modules.attention import KV, LayerKV, MultiHeadAttention
from valle.modules.norms import LayerNorm
from valle.modules.positions import SegmentPositions

NormFactory = Callable[[int], nn.Module]


class KVCache:
    """Keys/values of every layer for the positions decoded so far, plus their descriptors.

    Buffers are preallocated for ``capacity`` positions (grown geometrically beyond it) and
    written in place, as are the position descriptors, so a decoding step copies O(1) data.
    """

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self.kv: dict[int, LayerKV] = {}
        self._pos: tuple[Tensor, Tensor, Tensor] | None = None  # (B, C) segment, index, valid
        self._len = 0

    def layer(self, i: int) -> LayerKV:
        """Layer ``i``'s buffers (made on first use)."""
        if i not in self.kv:
            self.kv[i] = LayerKV(self.capacity)
        return self.kv[i]

    @property
    def layers(self) -> dict[int, KV]:
        """Cached keys/values (B, H, K, E) per layer (views)."""
        return {i: c.kv for i, c in self.kv.items()}

    @property
    def positions(self) -> SegmentPositions | None:
        """Descriptors of the cached keys (views of the buffers)."""
        if self._pos is None:
            return None
        seg, idx, valid = self._pos
        n = self._len
        return SegmentPositions(seg[:, :n], idx[:, :n], valid[:, :n])

    @positions.setter
    def positions(self, pos: SegmentPositions | None) -> None:
        self._pos, self._len = None, 0
        if pos is not None:
            self.extend(pos)

    def extend(self, pos: SegmentPositions) -> SegmentPositions:
        """Append descriptors (B, L) of new keys; returns the descriptors of all keys."""
        n, L = self._len, len(pos)
        end = n + L
        if self._pos is None or end > self._pos[0].shape[1]:
            cap = max(end, self.capacity, 2 * (0 if self._pos is None else self._pos[0].shape[1]))
            B = pos.segment.shape[0]
            new = (
                pos.segment.new_empty(B, cap),
                pos.index.new_empty(B, cap),
                pos.valid.new_empty(B, cap),
            )
            if self._pos is not None and n:
                for dst, src in zip(new, self._pos, strict=True):
                    dst[:, :n] = src[:, :n]
            self._pos = new
        for dst, src in zip(self._pos, (pos.segment, pos.index, pos.valid), strict=True):
            dst[:, n:end] = src
        self._len = end
        positions = self.positions
        assert positions is not None
        return positions

    def __len__(self) -> int:
        return self._len


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
        self,
        x: Tensor,
        mask: Tensor | None,
        cache: LayerKV | None = None,
        cond: Tensor | None = None,
    ) -> Tensor:
        x = x + self.dropout(self.attn(self.norm1(x, cond), mask, cache))  # (B, L, D)
        return x + self.dropout(self.ffn(self.norm2(x, cond)))


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

        With a ``cache`` the new keys/values are written into it (the caller keeps
        ``cache.positions`` in step).
        """
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, None if cache is None else cache.layer(i), cond)
        return self.final_norm(x, cond)
