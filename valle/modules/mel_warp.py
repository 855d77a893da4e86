"""Speaker augmentation by frequency warping of log-mel frames (training only).

Shape legend: B batch, T frames, F mel bins.

A zero-shot model must take its voice from the prompt. With few training voices (the mini
corpus has three recorded English speakers besides the engines' formant voices) it can learn
to pick the nearest known voice instead, and held-out voices then get the SIM of that neighbour
(``egs/mini/local/voice_neighbours.py``). Warping each training utterance's frequency axis by
its own factor ``a`` (vocal tract length perturbation, Jaitly and Hinton 2013; here on the mel
frames the model predicts, so harmonics and formants move together, like a pitch-and-formant
shift of the recording) makes every utterance a new voice that only its own earlier frames
reveal: the model is trained to continue the voice it hears.

Bin ``k`` (centre ``f_k`` Hz) of the warped frame takes the log-mel at frequency ``f_k / a`` of
the original, linearly interpolated between the bins whose centres surround it (clamped at the
edges): ``a > 1`` moves the spectrum up (a smaller speaker), ``a < 1`` down. Factors are drawn
log-uniformly in ``[1 / (1 + max_shift), 1 + max_shift]``; a share ``1 - prob`` of the rows is
left as recorded. Padding frames are warped like the others (the loss masks them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from valle.config import ConfigError, opt

__all__ = ["MelWarp", "MelWarpConfig", "mel_centres"]


@dataclass(frozen=True)
class MelWarpConfig:
    """Frequency-warp augmentation of training mels (see the module docstring)."""

    max_shift: float = opt(
        0.12, "warp factors log-uniform in [1/(1+s), 1+s] (0.12: about +-2 semitones; (0, 1))"
    )
    prob: float = opt(1.0, "share of training rows warped, in [0, 1]")

    def __post_init__(self) -> None:
        if not 0 < self.max_shift < 1:
            raise ConfigError(f"mel warp: max_shift must be in (0, 1), got {self.max_shift}")
        if not 0 <= self.prob <= 1:
            raise ConfigError(f"mel warp: prob must be in [0, 1], got {self.prob}")

    def build(self, centres: Tensor) -> MelWarp:
        return MelWarp(centres, self.max_shift, self.prob)


def mel_centres(n_mels: int, fmin: float, fmax: float, mel_scale: str = "slaney") -> Tensor:
    """Centre frequencies (F,) in Hz of the ``n_mels`` triangular filters between ``fmin`` and
    ``fmax`` on the ``mel_scale`` (the filterbank of :mod:`valle.codec.mel`)."""
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    lo, hi = (float(hertz_to_mel(f, mel_scale=mel_scale)) for f in (fmin, fmax))
    mels = torch.linspace(lo, hi, n_mels + 2, dtype=torch.float64)[1:-1]
    hz = mel_to_hertz(mels.numpy(), mel_scale=mel_scale)
    return torch.as_tensor(hz, dtype=torch.float32)


class MelWarp(nn.Module):
    """Warps each row of a (B, T, F) log-mel batch by its own random factor in training;
    identity in eval mode."""

    def __init__(self, centres: Tensor, max_shift: float, prob: float) -> None:
        super().__init__()
        self.register_buffer("centres", centres.float(), persistent=False)  # (F,) Hz
        self.max_shift = float(max_shift)
        self.prob = float(prob)

    def factors(
        self, batch: int, device: torch.device, generator: torch.Generator | None = None
    ) -> Tensor:
        """(B,) warp factors: log-uniform in [1/(1+s), 1+s], 1 for unwarped rows."""
        span = math.log1p(self.max_shift)
        a = torch.exp((torch.rand(batch, device=device, generator=generator) * 2 - 1) * span)
        keep = torch.rand(batch, device=device, generator=generator) >= self.prob
        return torch.where(keep, torch.ones_like(a), a)

    def warp(self, mel: Tensor, factors: Tensor) -> Tensor:
        """``mel`` (B, T, F) with row ``b``'s frequency axis warped by ``factors[b]``."""
        c = self.centres.to(mel.device)  # (F,)
        F = c.shape[0]
        if mel.shape[-1] != F:
            raise ValueError(f"mel warp: frames have {mel.shape[-1]} bins, the warp {F}")
        src = c[None, :] / factors[:, None].to(c.dtype)  # (B, F) Hz read by each output bin
        pos = torch.searchsorted(c, src.contiguous()).clamp(1, F - 1)  # (B, F) right neighbour
        lo_hz, hi_hz = c[pos - 1], c[pos]
        w = ((src - lo_hz) / (hi_hz - lo_hz)).clamp(0, 1)  # (B, F) weight of the right bin
        idx_lo = (pos - 1)[:, None, :].expand(-1, mel.shape[1], -1)  # (B, T, F)
        idx_hi = pos[:, None, :].expand(-1, mel.shape[1], -1)
        lo = torch.gather(mel, -1, idx_lo)
        hi = torch.gather(mel, -1, idx_hi)
        return lo + (hi - lo) * w[:, None, :].to(mel.dtype)

    def forward(self, mel: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``mel`` (B, T, F) warped row by row in training (draws from ``generator``, else
        the global RNG); unchanged in eval mode."""
        if not self.training:
            return mel
        return self.warp(mel, self.factors(mel.shape[0], mel.device, generator))
