"""A diagonal prior on the AR's audio-to-text attention (guided attention), a training aid.

Shape legend: B batch, S text tokens, N audio steps, H heads, E head width, D model width.

Speech reads its text in order, so the text position an audio step attends to should grow
roughly linearly with the step: step ``n`` of ``N`` near token ``s`` of ``S`` with
``s / S ~ n / N``. A decoder-only AR must discover that alignment on its own, and a small model
trained briefly on little data does not: it learns an acoustic language model and ignores its
text (``egs/mini/EXPERIMENTS.md``). The guided attention loss of Tachibana et al. (2018,
"Efficiently trainable text-to-speech system based on deep convolutional networks with guided
attention", Sec. 4.1) penalises attention far from that diagonal:

    W[n, s] = 1 - exp(-(s / S - n / N)^2 / (2 g^2))
    L_att = mean over valid (n, s) pairs of A[n, s] * W[n, s]

Here ``A`` is, for each audio query, the softmax of its attention logits over the *text keys
only* (the same logits the model computes, so the relative weight it gives to text tokens is
exactly this distribution; how much it attends to text versus audio stays free). The prior is
applied to the heads of the chosen layers, weighted by ``weight``, and is not part of the VALL-E
papers: it is off unless a config turns it on, and inference is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from valle.config import opt

__all__ = [
    "AlignmentPriorConfig",
    "GuidedAttentionPrior",
    "PriorTerm",
    "diagonal_penalty",
    "prior_term",
    "text_attention",
]


@dataclass(frozen=True)
class AlignmentPriorConfig:
    """Settings of :class:`GuidedAttentionPrior` (``ar.alignment_prior``; null: off)."""

    weight: float = opt(1.0, "loss weight of the prior (added to the AR loss), >= 0")
    sigma: float = opt(0.2, "width g of the diagonal band, as a fraction of the utterance")
    layers: tuple[int, ...] = opt((0,), "AR layers whose heads are guided (indices)")

    def build(self) -> GuidedAttentionPrior:
        return GuidedAttentionPrior(self.weight, self.sigma, self.layers)


def diagonal_penalty(text_lens: Tensor, audio_lens: Tensor, S: int, N: int, g: float) -> Tensor:
    """``W`` (B, N, S): 0 on the diagonal ``s/S_b = n/N_b``, near 1 far from it; 0 on padding."""
    s = torch.arange(S, device=text_lens.device).float()  # (S,)
    n = torch.arange(N, device=text_lens.device).float()  # (N,)
    s_rel = s[None, :] / text_lens[:, None].clamp(min=1).float()  # (B, S)
    n_rel = n[None, :] / audio_lens[:, None].clamp(min=1).float()  # (B, N)
    d = s_rel[:, None, :] - n_rel[:, :, None]  # (B, N, S)
    w = 1.0 - torch.exp(-(d**2) / (2.0 * g * g))
    valid = (s[None, None, :] < text_lens[:, None, None]) & (
        n[None, :, None] < audio_lens[:, None, None]
    )  # (B, N, S)
    return w * valid


def text_attention(attn: nn.Module, x_norm: Tensor, S: int, text_lens: Tensor) -> Tensor:
    """Audio queries' softmax over the text keys of one attention layer: (B, H, N, S).

    ``attn`` is a :class:`~valle.modules.attention.MultiHeadAttention` and ``x_norm`` (B, S+N, D)
    the normed input it saw (text columns first).
    """
    B, L, _ = x_norm.shape
    H, E = attn.num_heads, attn.head_dim
    qkv = attn.qkv(x_norm).view(B, L, 3, H, E)  # (B, L, 3, H, E)
    q = qkv[:, S:, 0].transpose(1, 2)  # (B, H, N, E)
    k = qkv[:, :S, 1].transpose(1, 2)  # (B, H, S, E)
    logits = q @ k.transpose(-1, -2) / E**0.5  # (B, H, N, S)
    pad = torch.arange(S, device=x_norm.device)[None, :] >= text_lens[:, None]  # (B, S)
    logits = logits.masked_fill(pad[:, None, None, :], float("-inf"))
    return logits.softmax(-1)


class GuidedAttentionPrior:
    """Collects the normed inputs of the chosen layers during a forward pass and scores them.

    Usage (inside a decoder's loss)::

        with prior.capture(backbone) as seen:
            logits = decoder(...)
        aux = prior.loss(backbone, seen, S, text_lens, audio_lens)
    """

    def __init__(self, weight: float, sigma: float = 0.2, layers: Sequence[int] = (0,)) -> None:
        if weight < 0 or sigma <= 0:
            raise ValueError(f"need weight >= 0 and sigma > 0, got {weight}, {sigma}")
        self.weight = weight
        self.sigma = sigma
        self.layers = tuple(layers)

    def capture(self, backbone: nn.Module) -> _Capture:
        return _Capture(backbone, self.layers)

    def loss(
        self,
        backbone: nn.Module,
        seen: dict[int, Tensor],
        S: int,
        text_lens: Tensor,
        audio_lens: Tensor,
    ) -> Tensor:
        """Mean penalty over the chosen layers' heads (a scalar, not yet weighted)."""
        terms = []
        for i in self.layers:
            a = text_attention(backbone.layers[i].attn, seen[i], S, text_lens)  # (B, H, N, S)
            w = diagonal_penalty(text_lens, audio_lens, S, a.shape[2], self.sigma)  # (B, N, S)
            rows = (torch.arange(a.shape[2], device=a.device)[None] < audio_lens[:, None]).sum()
            terms.append((a * w[:, None]).sum() / (rows.clamp(min=1) * a.shape[1]))
        return torch.stack(terms).mean()


class PriorTerm:
    """The prior's term of one loss call: the layers' inputs it captured and how to add it."""

    def __init__(
        self, prior: GuidedAttentionPrior | None, backbone: nn.Module, seen: dict[int, Tensor]
    ) -> None:
        self.prior = prior
        self.backbone = backbone
        self.seen = seen

    def add(
        self,
        loss: Tensor,
        metrics: dict[str, Tensor],
        S: int,
        text_lens: Tensor,
        audio_lens: Tensor,
    ) -> Tensor:
        """``loss + weight * L_att`` with ``metrics["attn_prior"]`` = ``L_att`` (detached);
        ``loss`` itself without a prior. ``S``: text columns, ``text_lens`` (B,) and
        ``audio_lens`` (B,): the forward pass's valid text tokens and audio steps."""
        if self.prior is None:
            return loss
        aux = self.prior.loss(self.backbone, self.seen, S, text_lens, audio_lens)
        metrics["attn_prior"] = aux.detach()
        return loss + self.prior.weight * aux


@contextmanager
def prior_term(prior: GuidedAttentionPrior | None, backbone: nn.Module) -> Iterator[PriorTerm]:
    """Capture what ``prior`` scores during the forward pass run inside the block (nothing
    when it is None, e.g. at evaluation); then add its term to the loss::

        with prior_term(prior, ar.backbone) as term:
            out = ar(...)
        loss, metrics = head.loss(out, ...)
        loss = term.add(loss, metrics, S, text_lens, audio_lens)
    """
    if prior is None:
        yield PriorTerm(None, backbone, {})
        return
    with prior.capture(backbone) as seen:
        yield PriorTerm(prior, backbone, seen)


class _Capture:
    """Context manager: forward hooks on ``layers[i].norm1`` storing their outputs."""

    def __init__(self, backbone: nn.Module, layers: tuple[int, ...]) -> None:
        self.backbone = backbone
        self.layers = layers
        self.seen: dict[int, Tensor] = {}
        self._hooks: list = []

    def __enter__(self) -> dict[int, Tensor]:
        for i in self.layers:
            layer = self.backbone.layers[i]

            def hook(_m: nn.Module, _inp: object, out: Tensor, i: int = i) -> None:
                self.seen[i] = out

            self._hooks.append(layer.norm1.register_forward_hook(hook))
        return self.seen

    def __exit__(self, *exc: object) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
