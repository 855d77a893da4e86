"""Gaussian latent sampler for continuous-frame models (MELLE, Meng et al. 2024, Sec. 3.2).

Shape legend: B batch, D latent (mel) dimensions.

MELLE's latent sampling module predicts ``mu`` and ``log sigma^2`` per frame and draws
``z = mu + sigma * eps`` with ``eps ~ N(0, I)`` (the reparameterisation trick), in training
and at inference. This object is the inference-time draw, with an explicit generator so that
decoding is reproducible; ``scale`` multiplies ``sigma`` (0 gives the mean, i.e. "greedy").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class GaussianSampler:
    """``(mu (B, D), logvar (B, D), generator) -> z (B, D)``, ``z = mu + scale * sigma * eps``."""

    def __init__(self, scale: float = 1.0) -> None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0):
            raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
        self.scale = float(scale)

    def __call__(
        self, mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        if mu.shape != logvar.shape:
            raise ValueError(
                f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
                f"{tuple(logvar.shape)}"
            )
        if self.scale == 0.0:
            return mu.clone()
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=torch.float32).to(
            mu.dtype
        )  # (B, D)
        return mu + self.scale * torch.exp(0.5 * logvar) * eps

    def __repr__(self) -> str:
        return f"GaussianSampler(scale={self.scale})"
