"""The attention probe recomputes exactly the weights the fused attention used."""

from __future__ import annotations

import torch

from valle.modules.attention_probe import AttentionProbe, attention_probabilities
from valle.modules.transformer import TransformerStack


def test_probe_weights_reproduce_the_layer_output() -> None:
    torch.manual_seed(0)
    stack = TransformerStack(2, 16, 4, 32).eval()
    x = torch.randn(2, 7, 16)
    mask = torch.ones(2, 7, 7, dtype=torch.bool).tril()  # causal
    mask[1, :, 5:] = False  # padding keys of row 1
    mask[1, 5:, :5] = True
    captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep_io(i):
        def hook(module, args, out):
            captured[i] = (args[0], out)

        return hook

    handles = [layer.attn.register_forward_hook(keep_io(i)) for i, layer in enumerate(stack.layers)]
    with AttentionProbe(stack.layers, average_heads=False) as probe:
        stack(x, mask)
    for h in handles:
        h.remove()
    assert probe.calls == 1
    for i, layer in enumerate(stack.layers):
        probs = probe.maps[i]
        assert probs is not None and probs.shape == (2, 4, 7, 7)
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 7))
        assert (probs.masked_select(~mask[:, None].expand_as(probs)) == 0).all()
        inp, out = captured[i]
        attn = layer.attn
        v = attn.qkv(inp).view(2, 7, 3, 4, 4)[:, :, 2].transpose(1, 2)  # (B, H, L, E)
        y = (probs @ v).transpose(1, 2).reshape(2, 7, 16)
        torch.testing.assert_close(attn.out(y), out, atol=1e-5, rtol=1e-4)
    # hooks are gone after the block
    n = probe.calls
    stack(x, mask)
    assert probe.calls == n


def test_head_average_and_keep() -> None:
    torch.manual_seed(1)
    stack = TransformerStack(1, 8, 2, 16).eval()
    x = torch.randn(1, 5, 8)
    mask = torch.rand(1, 5, 5, generator=torch.Generator().manual_seed(0)) > 0.3
    mask[..., 0] = True
    with AttentionProbe(stack.layers, queries=slice(3, None), keep=lambda p: p[..., :3]) as probe:
        stack(x, mask)
    full = attention_probabilities(stack.layers[0].attn, stack.layers[0].norm1(x), mask)
    torch.testing.assert_close(probe.maps[0], full.mean(1)[:, 3:, :3])
