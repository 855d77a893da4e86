"""Transformer stack: KV-cached decoding equals full recomputation; AdaLN; encodings; loss."""

from __future__ import annotations

import pytest
import torch

from valle.modules import (
    AdaptiveLayerNorm,
    KVCache,
    SinusoidalPositionalEncoding,
    TransformerStack,
    masked_token_loss,
)


def _causal(L: int, K: int) -> torch.Tensor:
    q = torch.arange(K - L, K)[:, None]
    return (torch.arange(K)[None, :] <= q).unsqueeze(0)  # (1, L, K)


def test_kv_cache_equals_full_recomputation() -> None:
    torch.manual_seed(0)
    stack = TransformerStack(3, 32, 4, 64, dropout=0.1).eval()
    x = torch.randn(2, 40, 32)
    full = stack(x, _causal(40, 40).expand(2, -1, -1))
    cache = KVCache()
    outs = [stack(x[:, :7], _causal(7, 7).expand(2, -1, -1), cache)]
    for t in range(7, 40):
        outs.append(stack(x[:, t : t + 1], _causal(1, t + 1).expand(2, -1, -1), cache))
    inc = torch.cat(outs, dim=1)
    assert (inc - full).abs().max() <= 1e-5
    assert cache.layers[0][0].shape == (2, 4, 40, 8)  # (B, H, K, E)


def test_adaln_depends_on_condition() -> None:
    torch.manual_seed(0)
    norm = AdaptiveLayerNorm(16)
    x = torch.randn(2, 5, 16)
    c1, c2 = torch.randn(2, 16), torch.randn(2, 16)
    assert not torch.allclose(norm(x, c1), norm(x, c2))
    torch.testing.assert_close(norm(x, c1), norm(x, c1.clone()))
    with pytest.raises(ValueError, match="condition"):
        norm(x, None)


def test_adaln_stack_passes_condition_to_every_norm() -> None:
    torch.manual_seed(0)
    stack = TransformerStack(2, 16, 2, 32, norm_factory=AdaptiveLayerNorm).eval()
    x = torch.randn(1, 6, 16)
    a = stack(x, None, cond=torch.zeros(1, 16))
    b = stack(x, None, cond=torch.ones(1, 16))
    assert (a - b).abs().max() > 1e-3


def test_positional_encoding_per_row_positions_and_learned_scale() -> None:
    pe = SinusoidalPositionalEncoding(8)
    x = torch.zeros(2, 3, 8)
    pos = torch.tensor([[0, 1, 2], [5, 6, 7]])
    y = pe(x, pos)
    torch.testing.assert_close(y[0, 0], torch.cat([torch.zeros(4), torch.ones(4)]))
    assert not torch.allclose(y[0], y[1])
    torch.testing.assert_close(y[1, 0], pe(x[:1, :1], torch.tensor([[5]]))[0, 0])
    assert pe.alpha.requires_grad
    with torch.no_grad():
        pe.alpha.fill_(2.0)
    torch.testing.assert_close(pe(x, pos), 2 * y)


def test_masked_token_loss_ignores_masked_positions() -> None:
    logits = torch.tensor([[[5.0, 0.0, 0.0], [1.0, 0.0, 5.0]]])  # (1, 2, 3)
    targets = torch.tensor([[0, 0]])
    loss_all, m_all = masked_token_loss(logits, targets, torch.tensor([[True, True]]))
    loss_one, m_one = masked_token_loss(logits, targets, torch.tensor([[True, False]]))
    assert m_all["acc"] == 0.5 and m_one["acc"] == 1.0
    assert loss_one < loss_all
    _, m_k = masked_token_loss(logits, targets, torch.tensor([[True, True]]), top_k=2)
    assert m_k["top10_acc"] == 1.0
    with pytest.raises(ValueError, match="masked"):
        masked_token_loss(logits, targets, torch.tensor([[False, False]]))
