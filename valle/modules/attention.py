"""Multi-head self-attention over ``F.scaled_dot_product_attention`` with a KV cache.

Shape legend: B batch, L query positions, K key positions, C cache capacity, H heads,
E head width, D model width.

Incremental decoding writes each step's keys/values in place into preallocated per-layer
buffers (:class:`LayerKV`, (B, H, C, E)) instead of concatenating: a step then costs O(1)
copies, not O(K), so the time per step stays flat as the sequence grows.

Memory: ``F.scaled_dot_product_attention`` picks a fused kernel (flash attention on the CPU,
flash or memory-efficient on CUDA) that never materialises the (B, H, L, K) probabilities,
unless dropout on the attention weights is asked for on the CPU: torch's CPU flash kernel has
no dropout, so SDPA falls back to its math path, which keeps the scores, the probabilities
and the dropout mask of every layer for the backward pass (at the paper's base size the bulk
of a training step's memory). ``attention_dropout=0`` keeps training on the fused kernel.
A boolean mask is turned into an additive float mask by SDPA on every call; the stack does
that once per forward (:func:`attention_bias`) and drops a mask that allows everything.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KV = tuple[Tensor, Tensor]  # keys, values: (B, H, K, E) each


class LayerKV:
    """One layer's cached keys and values in buffers grown geometrically (amortised O(1)).

    ``capacity`` (optional) sizes the buffers up front so that decoding never reallocates.
    """

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self.length = 0
        self._k: Tensor | None = None  # (B, H, C, E)
        self._v: Tensor | None = None

    def _reserve(self, like: Tensor, needed: int) -> None:
        if self._k is not None and needed <= self._k.shape[2]:
            return
        B, H, _, E = like.shape
        cap = max(needed, self.capacity, 2 * (0 if self._k is None else self._k.shape[2]), 16)
        k = like.new_empty(B, H, cap, E)  # (B, H, C, E)
        v = like.new_empty(B, H, cap, E)
        if self._k is not None and self._v is not None and self.length:
            k[:, :, : self.length] = self._k[:, :, : self.length]
            v[:, :, : self.length] = self._v[:, :, : self.length]
        self._k, self._v = k, v

    def append(self, k: Tensor, v: Tensor) -> KV:
        """Write new keys/values (B, H, L, E) after the cached ones; return all (B, H, K, E)."""
        end = self.length + k.shape[2]
        self._reserve(k, end)
        assert self._k is not None and self._v is not None
        self._k[:, :, self.length : end] = k
        self._v[:, :, self.length : end] = v
        self.length = end
        return self._k[:, :, :end], self._v[:, :, :end]

    @property
    def kv(self) -> KV:
        """The cached keys and values (B, H, K, E) (views of the buffers)."""
        if self._k is None or self._v is None:
            raise ValueError("this layer's cache is empty")
        return self._k[:, :, : self.length], self._v[:, :, : self.length]


def attention_bias(mask: Tensor | None, dtype: torch.dtype = torch.float32) -> Tensor | None:
    """The form of ``mask`` SDPA's fused kernels read, made once for every layer.

    ``mask`` (B, L, K) bool (True = may attend) becomes an additive (B, 1, L, K) float mask
    (0 where allowed, -inf elsewhere: what SDPA itself makes of a boolean mask on each call);
    a mask that allows every key, or None, becomes None (no mask to read; on CUDA it also
    lets the flash kernel run). A float mask is returned as it is. The all-allowed check reads
    one value back to the host, so it is made for whole sequences (L > 1) only: a decoding
    step (L = 1) keeps its small bias and its loop keeps one host read per step.
    """
    if mask is None or mask.dtype != torch.bool:
        return mask
    if mask.shape[-2] > 1 and bool(mask.all()):
        return None
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill_(~mask, float("-inf")).unsqueeze(1)  # (B, 1, L, K)


class MultiHeadAttention(nn.Module):
    """Self-attention; ``mask`` says which keys each query may see: (B, L, K) bool (True = may)
    or its :func:`attention_bias` (B, 1, L, K) float; ``dropout`` acts on the attention weights.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None, cache: LayerKV | None = None) -> Tensor:
        """Attend from ``x`` (B, L, D) to the cached keys followed by ``x``'s own keys.

        With a ``cache`` the new keys/values are written into it; ``mask`` (B, L, K) bool, or
        (B, 1, L, K) additive float, covers cached + new keys. Returns the output (B, L, D).
        """
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, self.head_dim).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, E)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, K, E)
        attn_mask = mask
        if mask is not None and mask.dtype == torch.bool:
            attn_mask = mask.unsqueeze(1)  # (B, 1, L, K)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, L, E)
        y = y.transpose(1, 2).reshape(B, L, D)  # (B, L, D)
        return self.out(y)
