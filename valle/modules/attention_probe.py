"""Read attention probabilities out of a transformer stack without changing its fast path.

Shape legend: B batch, L query positions, K key positions, H heads, E head width, D width.

:class:`~valle.modules.attention.MultiHeadAttention` calls ``F.scaled_dot_product_attention``,
which never materialises the attention weights. :class:`AttentionProbe` hooks every layer's
attention module while it is active, takes the module's own inputs (the normed hidden states
and the (B, L, K) bool mask) and recomputes ``softmax(q k^T / sqrt(E))`` with that mask from the
module's ``qkv`` projection: the weights the fused kernel used, bit for bit up to float
rounding (dropout aside). Passes that use a KV cache (incremental decoding) are not recorded:
their keys live in the cache, not in the inputs.

Usage::

    with AttentionProbe(model.ar.backbone.layers) as probe:
        model.ar(text, text_lens, audio_in, audio_lens)
    maps = probe.maps  # one (B, L, K) head-averaged tensor per layer, on the CPU
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AttentionProbe", "attention_probabilities"]


def attention_probabilities(
    attn: Any, x: Tensor, mask: Tensor | None, queries: slice | None = None
) -> Tensor:
    """Attention weights (B, H, L', K) of ``attn`` (a ``MultiHeadAttention``) for its input.

    ``x`` (B, L, D) is the module's input (the normed hidden states), ``mask`` (B, L, K) bool
    (True = may attend), its additive (B, 1, L, K) float form, or None. ``queries`` (optional) keeps only those query rows (L' of
    them; every key is still used, so each row sums to 1 as in the model). Rows without any
    allowed key are all zeros.
    """
    B, L, _ = x.shape
    H, E = int(attn.num_heads), int(attn.head_dim)
    w_q, w_k, _ = attn.qkv.weight.chunk(3, dim=0)  # (D, D) each
    b_q, b_k, _ = attn.qkv.bias.chunk(3) if attn.qkv.bias is not None else (None, None, None)
    xq = x if queries is None else x[:, queries]  # (B, L', D)
    q = F.linear(xq, w_q, b_q).view(B, xq.shape[1], H, E).transpose(1, 2)  # (B, H, L', E)
    k = F.linear(x, w_k, b_k).view(B, L, H, E).transpose(1, 2)  # (B, H, K, E)
    scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(E)  # (B, H, L', K)
    if mask is not None:
        if mask.dtype != torch.bool:  # the stack's additive (B, 1, L, K) form (attention_bias)
            mask = mask[:, 0] > float("-inf")  # (B, L, K)
        m = mask if queries is None else mask[:, queries]  # (B, L', K)
        scores = scores.masked_fill(~m[:, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(probs, nan=0.0)  # fully masked rows -> 0


class AttentionProbe:
    """Context manager recording the attention maps of ``layers`` (each with an ``.attn``).

    Args:
        layers: transformer layers (e.g. ``backbone.layers``); each must have an ``attn``
            module with ``qkv``, ``num_heads`` and ``head_dim``.
        average_heads: store the mean over heads (B, L, K) instead of (B, H, L, K).
        queries: optional slice of the query rows to compute (e.g. the audio positions).
        keep: optional function ``(probs) -> tensor`` applied before storing (e.g. slice the
            text keys) to keep memory small.

    After the forward pass ``maps[i]`` holds layer i's weights of the last recorded pass (on
    the CPU, float32); ``calls`` counts recorded passes.
    """

    def __init__(
        self,
        layers: Iterable[nn.Module],
        *,
        average_heads: bool = True,
        queries: slice | None = None,
        keep: Any | None = None,
    ) -> None:
        self.layers = list(layers)
        self.average_heads = average_heads
        self.queries = queries
        self.keep = keep
        self.maps: list[Tensor | None] = [None] * len(self.layers)
        self.calls = 0
        self._handles: list[Any] = []

    def _hook(self, i: int) -> Any:
        def hook(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
        ) -> None:
            x = args[0] if args else kwargs["x"]
            mask = args[1] if len(args) > 1 else kwargs.get("mask")
            cache = args[2] if len(args) > 2 else kwargs.get("cache")
            if cache is not None:
                return  # keys are in the cache; nothing to recompute from the inputs
            with torch.no_grad():
                probs = attention_probabilities(module, x, mask, self.queries)  # (B, H, L', K)
                if self.average_heads:
                    probs = probs.mean(1)  # (B, L, K)
                if self.keep is not None:
                    probs = self.keep(probs)
                self.maps[i] = probs.detach().float().cpu()
            if i == 0:
                self.calls += 1

        return hook

    def __enter__(self) -> AttentionProbe:
        for i, layer in enumerate(self.layers):
            attn: Any = layer.attn
            self._handles.append(attn.register_forward_hook(self._hook(i), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
