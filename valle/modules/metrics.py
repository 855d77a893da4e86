"""Masked token classification loss and accuracies shared by the heads.

Shape legend: N tokens (any leading shape flattened), V classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_token_loss(
    logits: Tensor, targets: Tensor, mask: Tensor, top_k: int = 10
) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean cross entropy over the positions where ``mask`` is True, with accuracies.

    Args:
        logits: (..., V) float.
        targets: (...) long, class ids.
        mask: (...) bool, which positions count.
    Returns:
        ``(loss, {"loss", "acc", "top10_acc"})``; metrics are detached. ``top10_acc`` is
        the top-``top_k`` accuracy (k capped at V), as reported in VALL-E.
    """
    V = logits.shape[-1]
    logits = logits.reshape(-1, V)[mask.reshape(-1)]  # (N, V)
    targets = targets.reshape(-1)[mask.reshape(-1)]  # (N,)
    if targets.numel() == 0:
        raise ValueError("no positions to score: every target position is masked out")
    loss = F.cross_entropy(logits.float(), targets)
    with torch.no_grad():
        acc = (logits.argmax(-1) == targets).float().mean()
        k = min(top_k, V)
        topk = logits.topk(k, dim=-1).indices  # (N, k)
        top_acc = (topk == targets[:, None]).any(-1).float().mean()
    return loss, {"loss": loss.detach(), "acc": acc, "top10_acc": top_acc}
