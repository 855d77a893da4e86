"""Step dropout: a training aid that hides some fed-back acoustic inputs of the AR.

Under teacher forcing the AR reads the previous frame's code at every step, and "repeat the
previous code" is already a strong guess (the persistence baseline of ``valle-bench
diagnose``). A small model can settle there and never learn to read its text. Step dropout
zeroes the embedding of a random share ``p`` of the fed-back steps during training, so at
those steps the prediction has to come from the text (and, in the phoneme-aligned AR of
VALL-E R, from the step's own phoneme, which is added after the drop). This is the idea of
Tacotron 2's pre-net dropout (Shen et al. 2018, Sec 2.2) and of MELLE's pre-net, applied to
whole steps of a code embedding. Off (``p = 0``) by default; nothing changes at inference.

It is a forward hook on the step embedding, so it adds no parameter and checkpoints keep
their keys.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["StepDropout", "add_step_dropout"]


class StepDropout:
    """Forward hook: in training, zero the embedding ``(B, N, ..., D)`` of each step with
    probability ``p`` (one draw per ``(b, n)``, no rescaling: a dropped step reads as "no
    previous frame", not as a scaled one)."""

    def __init__(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"step dropout must be in [0, 1), got {p}")
        self.p = float(p)

    def __call__(self, module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
        if not module.training or self.p == 0.0 or output.dim() < 3:
            return output
        shape = output.shape[:2] + (1,) * (output.dim() - 2)  # (B, N, 1, ...)
        keep = torch.rand(shape, device=output.device) >= self.p
        return output * keep.to(output.dtype)


def add_step_dropout(embedding: nn.Module, p: float) -> nn.Module:
    """Attach :class:`StepDropout` to ``embedding`` (returned as is when ``p`` is 0)."""
    hook = StepDropout(p)  # validates p
    if hook.p > 0.0:
        embedding.register_forward_hook(hook)
    return embedding
