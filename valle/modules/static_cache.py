"""A KV cache of fixed shape, written at a device-side cursor: what a CUDA graph can capture.

Shape legend: B batch, H heads, C capacity (every position a call may hold), E head width,
L new positions of one write.

:class:`~valle.modules.transformer.KVCache` grows and is sliced by host-side lengths, so the
key tensors a decoding step attends over are (B, H, K, E) with K changing every step: a
captured CUDA graph would replay the shapes and addresses of the step it recorded. Here every
buffer is allocated once at capacity C and never resized:

- each layer's keys/values are (B, H, C, E) (:class:`StaticLayerKV`); a write puts the L new
  ones at slots ``cursor .. cursor + L - 1`` with ``index_copy_`` (the slot is a device
  tensor, not a Python slice bound), and attention reads all C slots;
- the key descriptors (segment, index, validity; (B, C)) are written the same way, and
  :attr:`StaticKVCache.positions` reports a slot as valid only when it was written by a real
  token *and* lies before the cursor's end (``slot < cursor + L``), so slots not yet reached
  (stale or zero) are masked out of attention by the mask policy's ``key.valid``.

The buffers start at zero, so a masked slot never holds NaN (a masked key gets weight 0, and
0 times a finite value is 0). Nothing here reads a value back to the host; the host keeps its
own count of written positions (``len(cache)``) for bounds checks only.

The layer and stack code need no change: :class:`StaticLayerKV` is a
:class:`~valle.modules.attention.LayerKV` whose ``append`` returns the full (B, H, C, E)
buffers, and :class:`StaticKVCache` a :class:`~valle.modules.transformer.KVCache` whose
``extend`` returns descriptors of all C slots, which is what the attention and the mask policy
read.
"""

from __future__ import annotations

import torch
from torch import Tensor

from valle.modules.attention import KV, LayerKV
from valle.modules.positions import SegmentPositions
from valle.modules.transformer import KVCache

__all__ = ["StaticKVCache", "StaticLayerKV"]


class StaticLayerKV(LayerKV):
    """One layer's keys and values in fixed (B, H, C, E) buffers, written at ``cursor`` (1,)."""

    def __init__(self, keys: Tensor, values: Tensor, cursor: Tensor) -> None:
        super().__init__(keys.shape[2])
        self._k, self._v = keys, values  # (B, H, C, E) each
        self.cursor = cursor  # (1,) long, shared with the stack's cache

    def append(self, k: Tensor, v: Tensor) -> KV:
        """Write new keys/values (B, H, L, E) at slots ``cursor + 0 .. L - 1``; return the
        whole buffers (B, H, C, E) (slots past the cursor are masked by the caller)."""
        assert self._k is not None and self._v is not None
        slots = self.cursor + torch.arange(k.shape[2], device=k.device)  # (L,)
        self._k.index_copy_(2, slots, k.to(self._k.dtype))
        self._v.index_copy_(2, slots, v.to(self._v.dtype))
        return self._k, self._v

    @property
    def kv(self) -> KV:
        """The whole buffers (B, H, C, E), written or not."""
        assert self._k is not None and self._v is not None
        return self._k, self._v


class StaticKVCache(KVCache):
    """Keys/values of ``num_layers`` layers and the key descriptors in fixed buffers.

    Args:
        num_layers: layers of the stack.
        batch, heads, capacity, head_dim: B, H, C, E.
        dtype, device: of the key/value buffers (the model's activations).

    ``cursor`` (1,) long on ``device``: the slot the next write starts at. :meth:`advance`
    moves it (a device op, recordable in a graph); :meth:`load` fills the buffers from a
    prefilled :class:`~valle.modules.transformer.KVCache`.
    """

    def __init__(
        self,
        num_layers: int,
        batch: int,
        heads: int,
        capacity: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        super().__init__(capacity)
        if capacity < 1 or batch < 1:
            raise ValueError(f"batch and capacity must be >= 1, got {batch}, {capacity}")
        B, C = batch, capacity
        self.cursor = torch.zeros(1, dtype=torch.long, device=device)  # (1,)
        self.slots = torch.arange(C, device=device)  # (C,)
        self.buffers = [
            (
                torch.zeros(B, heads, C, head_dim, dtype=dtype, device=device),  # (B, H, C, E)
                torch.zeros(B, heads, C, head_dim, dtype=dtype, device=device),
            )
            for _ in range(num_layers)
        ]
        self.kv = {i: StaticLayerKV(k, v, self.cursor) for i, (k, v) in enumerate(self.buffers)}
        self.segment = torch.zeros(B, C, dtype=torch.long, device=device)  # (B, C)
        self.index = torch.zeros(B, C, dtype=torch.long, device=device)  # (B, C)
        self.valid = torch.zeros(B, C, dtype=torch.bool, device=device)  # (B, C)

    def layer(self, i: int) -> LayerKV:
        """Layer ``i``'s buffers (all made up front)."""
        return self.kv[i]

    @property  # type: ignore[misc]  # read-only here: the descriptors come from load()
    def positions(self) -> SegmentPositions:
        """Descriptors of all C slots (B, C); ``valid`` is False past the cursor."""
        live = self.slots[None, :] < self.cursor  # (1, C)
        return SegmentPositions(self.segment, self.index, self.valid & live)

    def extend(self, pos: SegmentPositions) -> SegmentPositions:
        """Write descriptors (B, L) at slots ``cursor .. cursor + L - 1``; return those of all
        C slots (B, C), valid up to the new keys inclusive. The cursor does not move
        (:meth:`advance` does, after the layers have written their keys)."""
        L = len(pos)
        if self._len + L > self.capacity:
            raise ValueError(f"static cache full: {self._len} + {L} > capacity {self.capacity}")
        slots = self.cursor + torch.arange(L, device=self.cursor.device)  # (L,)
        self.segment.index_copy_(1, slots, pos.segment)
        self.index.index_copy_(1, slots, pos.index)
        self.valid.index_copy_(1, slots, pos.valid)
        live = self.slots[None, :] < self.cursor + L  # (1, C)
        return SegmentPositions(self.segment, self.index, self.valid & live)

    def advance(self, n: int = 1) -> None:
        """Move the cursor past ``n`` written positions (device op; host count too)."""
        self.cursor.add_(n)
        self.count(n)

    def count(self, n: int = 1) -> None:
        """Add ``n`` to the host count of written positions only: for a cursor moved on the
        device where the host did not run the op (a CUDA graph replay)."""
        self._len += n

    def load(self, cache: KVCache) -> None:
        """Copy a filled cache (K <= C positions, same B, H, E and layers) into the buffers
        and put the cursor after it."""
        pos = cache.positions
        if pos is None:
            raise ValueError("the cache to load is empty; run prefill first")
        K = len(cache)
        if K > self.capacity:
            raise ValueError(f"cache of {K} positions does not fit capacity {self.capacity}")
        if set(cache.kv) != set(self.kv):
            raise ValueError(f"cache has layers {sorted(cache.kv)}, expected {sorted(self.kv)}")
        for i, (k_buf, v_buf) in enumerate(self.buffers):
            k, v = cache.kv[i].kv  # (B, H, K, E)
            if k.shape[:2] != k_buf.shape[:2] or k.shape[3] != k_buf.shape[3]:
                raise ValueError(
                    f"layer {i}: cache keys {tuple(k.shape)} do not fit buffers "
                    f"{tuple(k_buf.shape)} (B, H, C, E)"
                )
            k_buf[:, :, :K].copy_(k)
            v_buf[:, :, :K].copy_(v)
        self.segment[:, :K].copy_(pos.segment)
        self.index[:, :K].copy_(pos.index)
        self.valid[:, :K].copy_(pos.valid)
        self.cursor.fill_(K)
        self._len = K

    def __len__(self) -> int:
        return self._len
