"""Protocols shared by the token samplers.

Shape legend: B batch (rows decoded in parallel), V vocabulary, t steps decoded so far.

A token sampler is a small object ``sampler(logits (B, V), history (B, t) long, generator)
-> (B,) long``; the AR generate loops take one instead of ``top_k=``/``top_p=`` keywords
(DESIGN.md, section 2). A logit filter maps logits ``(B, V) -> (B, V)``, setting the logits of
excluded tokens to ``-inf``; filters compose in order inside a
:class:`~valle.sampling.samplers.FilteredSampler`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class TokenSampler(Protocol):
    """``(logits (B, V), history (B, t) long, generator) -> ids (B,) long``.

    ``history`` holds the tokens decoded so far for each row (``t`` may be 0); samplers that
    do not need it ignore it. With the same ``generator`` state, a sampler returns the same ids.
    """

    def __call__(
        self, logits: Tensor, history: Tensor, generator: torch.Generator | None = None
    ) -> Tensor: ...


@runtime_checkable
class LogitFilter(Protocol):
    """``logits (B, V) -> logits (B, V)`` with excluded tokens at ``-inf`` (never in place)."""

    def __call__(self, logits: Tensor) -> Tensor: ...


def check_logits(logits: Tensor) -> None:
    """Raise a clear error unless ``logits`` is a float (B, V) tensor with V >= 1.

    Reads metadata only (shape, dtype), never values, so it costs no host-device sync; the
    samplers call it on every draw. Value checks are :func:`check_logit_values`.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() != 2 or logits.shape[-1] < 1:
        raise ValueError(f"logits must have shape (B, V) with V >= 1, got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")


def check_logit_values(logits: Tensor) -> None:
    """Raise a clear error when ``logits`` (..., V) hold a NaN or a row that is all ``-inf``.

    One host-device sync: the AR generate loop calls it once per call on the first step's
    logits (a model that produces NaN does so from the start), never per step or element.
    """
    bad = torch.stack([torch.isnan(logits).any(), ~(logits > float("-inf")).any(-1).all()])
    nan, all_inf = bad.tolist()
    if nan:
        raise ValueError("logits contain NaN; check the model output (e.g. fp16 overflow)")
    if all_inf:
        raise ValueError("a row of logits is entirely -inf: no token can be sampled")


def check_history(history: Tensor, batch: int) -> None:
    """Raise a clear error unless ``history`` is an integer (B, t) tensor for ``batch`` rows."""
    if not isinstance(history, Tensor):
        raise TypeError(f"history must be a torch.Tensor, got {type(history).__name__}")
    if history.dim() != 2 or history.shape[0] != batch:
        raise ValueError(
            f"history must have shape (B, t) = ({batch}, t), got {tuple(history.shape)}; "
            "pass torch.zeros(B, 0, dtype=torch.long) before the first step"
        )
    if history.is_floating_point() or history.dtype == torch.bool:
        raise TypeError(f"history must hold integer token ids, got {history.dtype}")
