"""Wall-clock timing on a device whose kernels run asynchronously (CUDA).

Shape legend: none (no tensors are moved here).

A CUDA kernel returns before it has run, so a timer read right after a launch measures the
launch only; :func:`sync` waits for the device first (a no-op on the CPU).
"""

from __future__ import annotations

import torch

__all__ = ["sync"]


def sync(device: torch.device) -> None:
    """Wait until ``device`` has run every kernel queued so far (CUDA; nothing on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
