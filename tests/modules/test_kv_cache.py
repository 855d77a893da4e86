"""KV cache buffers: written in place (no per-step reallocation), grown when needed, exact."""

from __future__ import annotations

import torch

from valle.modules import KVCache, SegmentPositions, TransformerStack
from valle.modules.attention import LayerKV
from valle.modules.positions import AUDIO


def _causal(L: int, K: int) -> torch.Tensor:
    q = torch.arange(K - L, K)[:, None]
    return (torch.arange(K)[None, :] <= q).unsqueeze(0)  # (1, L, K)


def test_preallocated_cache_is_never_reallocated_while_decoding() -> None:
    torch.manual_seed(0)
    stack = TransformerStack(2, 16, 2, 32).eval()
    x = torch.randn(1, 30, 16)
    cache = KVCache(capacity=30)
    stack(x[:, :5], _causal(5, 5), cache)
    ptrs = {i: (c._k.data_ptr(), c._v.data_ptr()) for i, c in cache.kv.items()}  # type: ignore[union-attr]
    for t in range(5, 30):
        stack(x[:, t : t + 1], _causal(1, t + 1), cache)
    assert {i: (c._k.data_ptr(), c._v.data_ptr()) for i, c in cache.kv.items()} == ptrs  # type: ignore[union-attr]
    assert cache.layers[1][0].shape == (1, 2, 30, 8)


def test_layer_cache_grows_past_its_capacity_and_keeps_the_old_entries() -> None:
    layer = LayerKV(capacity=2)
    chunks = [torch.randn(2, 3, n, 4) for n in (1, 1, 3, 7)]
    for c in chunks:
        k, v = layer.append(c, -c)
    want = torch.cat(chunks, dim=2)
    assert torch.equal(k, want) and torch.equal(v, -want)
    assert layer.length == 12


def test_positions_extend_in_place_and_reset() -> None:
    cache = KVCache(capacity=4)
    lens = torch.tensor([2, 1])
    first = SegmentPositions.span(AUDIO, lens, 2)
    cache.positions = first
    allpos = cache.extend(SegmentPositions.span(AUDIO, torch.ones(2, dtype=torch.long), 1, lens))
    assert len(cache) == 3 and allpos.index.tolist() == [[0, 1, 2], [0, 1, 1]]
    assert allpos.valid.tolist() == [[True, True, True], [True, False, True]]
    for _ in range(5):  # past the capacity
        allpos = cache.extend(SegmentPositions.span(AUDIO, torch.ones(2, dtype=torch.long), 1))
    assert len(cache) == 8 and allpos.index[:, :3].tolist() == [[0, 1, 2], [0, 1, 1]]
    cache.positions = None
    assert len(cache) == 0 and cache.positions is None
