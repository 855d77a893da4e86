"""Pre-norm transformer layer and stack, with a KV cache for incremental decoding.

Shape legend: B batch, L query positions, K key positions, D model width.

Norms are pluggable (:mod:`valle.modules.norms`): a ``norm_factory(d_model)`` makes every
norm of the stack, and each is called with the stack's ``cond`` (B, D) — ``None`` for plain
LayerNorm, the stage embedding for AdaLN (VALL-E Sec 4.2.2).

Training memory: the stack turns the mask into SDPA's form once per forward
(:func:`~valle.modules.attention.attention_bias`), not once per layer; with ``checkpointing``
set (``train.activation_checkpointing``) each layer's activations are recomputed in the
backward pass instead of kept (``torch.utils.checkpoint``, non-reentrant, RNG state preserved:
the same loss and gradients, dropout included, for about one more forward of compute).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from valle.modules.attention import KV, LayerKV, MultiHeadAttention, attention_bias
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
    """``x + Attn(Norm(x)); x + FFN(Norm(x))`` (pre-norm).

    ``dropout`` acts on the residual branches and inside the FFN; ``attention_dropout`` on the
    attention weights (None: the same as ``dropout``).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        norm_factory: NormFactory = LayerNorm,
        attention_dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = norm_factory(d_model)
        attn_p = dropout if attention_dropout is None else attention_dropout
        self.attn = MultiHeadAttention(d_model, num_heads, attn_p)
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
    """``num_layers`` pre-norm layers and a final norm.

    ``checkpointing`` (an attribute, off by default; a training-time choice that changes no
    weight and no output) recomputes each layer's activations in the backward pass.
    """

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        norm_factory: NormFactory = LayerNorm,
        attention_dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.checkpointing = False
        self.layers = nn.ModuleList(
            TransformerLayer(d_model, num_heads, ffn_dim, dropout, norm_factory, attention_dropout)
            for _ in range(num_layers)
        )
        self.final_norm = norm_factory(d_model)

    @classmethod
    def from_config(cls, cfg: Any, norm_factory: NormFactory = LayerNorm) -> TransformerStack:
        """The stack a :class:`~valle.config.TransformerConfig` describes."""
        return cls(
            cfg.num_layers,
            cfg.d_model,
            cfg.num_heads,
            cfg.ffn_dim,
            cfg.dropout,
            norm_factory,
            getattr(cfg, "attention_dropout", None),
        )

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
        bias = attention_bias(mask, x.dtype)  # (B, 1, L, K) float or None, once for all layers
        recompute = self.checkpointing and cache is None and self.training
        recompute = recompute and torch.is_grad_enabled()
        for i, layer in enumerate(self.layers):
            if recompute:
                x = checkpoint(layer, x, bias, None, cond, use_reentrant=False)
            else:
                x = layer(x, bias, None if cache is None else cache.layer(i), cond)
        return self.final_norm(x, cond)
