"""A phoneme duration predictor: text embeddings and a speaking rate -> frames per phoneme.

Shape legend: B batch, S text tokens, D embedding width, C channels.

A model whose frames are aligned to their phonemes needs durations when it speaks a new
text. RALL-E (Sec 3.2) predicts them inside its AR's chain of thought; VALL-E R's pointer
decides them frame by frame. This is the plain alternative FastSpeech (Ren et al. 2019,
Sec 3.3) uses: a few 1-D convolutions over the phoneme embeddings regress ``log d`` of every
phoneme, trained with a squared error next to the model's own loss. It also reads one number
for the voice: the speaking rate ``log(frames / tokens)`` of the acoustic prompt (in training,
of the utterance itself), so a slow speaker's prompt gives longer phonemes.

A squared error on ``log d`` makes ``exp(prediction)`` the median of a phoneme's duration, not
its mean: with a residual variance s^2 in the log domain the mean is ``exp(prediction + s^2/2)``
(log-normal). Summed over a sentence the median falls short; the main job's outputs were 8-11%
shorter than their references (mean output / reference length 0.92 continuation, 0.89
cross-sentence; residual s^2 about 0.17 on the training batches, 0.21 on dev). The predictor
keeps a running estimate of s^2 from its training loss (``log_variance``) and predicts the mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from valle.config import ConfigError, opt
from valle.modules.local_conv import LocalConvStack

__all__ = ["DurationPredictor", "DurationPredictorConfig", "speaking_rate"]


def speaking_rate(frames: Tensor, tokens: Tensor) -> Tensor:
    """``log(frames / tokens)`` (B,) float; NaN where a row has no frames or no tokens."""
    f, n = frames.double(), tokens.double()
    ok = (f > 0) & (n > 0)
    rate = torch.log(f.clamp(min=1) / n.clamp(min=1))
    return torch.where(ok, rate, torch.full_like(rate, float("nan"))).float()


@dataclass(frozen=True)
class DurationPredictorConfig:
    """Durations from the text and the prompt's speaking rate (trained with the model)."""

    channels: int = opt(128, "convolution channels (count)")
    layers: int = opt(3, "residual convolution blocks (count, >= 1)")
    kernel_size: int = opt(3, "convolution kernel (tokens, odd)")
    weight: float = opt(1.0, "weight of its squared log-duration error in the loss (> 0)")

    def __post_init__(self) -> None:
        if self.channels < 1 or self.layers < 1:
            raise ConfigError("durations.channels and durations.layers must be >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"durations.kernel_size must be odd, got {self.kernel_size}")
        if not self.weight > 0:
            raise ConfigError(f"durations.weight must be > 0, got {self.weight}")

    def build(self, d_model: int) -> DurationPredictor:
        return DurationPredictor(d_model, self.channels, self.layers, self.kernel_size)


class DurationPredictor(nn.Module):
    """(text embeddings (B, S, D), speaking rate (B,)) -> ``log d`` (B, S).

    ``default_rate`` (a buffer, saved with the weights) is the mean training rate, used for a
    row whose rate is unknown (NaN: no prompt, or a prompt without its transcript).
    ``log_variance`` (a buffer) is the running mean of the training loss, the residual variance
    of ``log d``, with which :meth:`predict` turns the median into the mean; a checkpoint saved
    before it existed loads with NaN and predicts the median, as it did.
    """

    def __init__(self, d_model: int, channels: int, layers: int, kernel_size: int) -> None:
        super().__init__()
        self.inp = nn.Linear(d_model, channels)
        self.rate = nn.Linear(1, channels)
        self.convs = LocalConvStack(channels, layers, kernel_size)
        self.out = nn.Linear(channels, 1)
        self.register_buffer("default_rate", torch.tensor(float("nan")))
        self.register_buffer("log_variance", torch.tensor(float("nan")))

    def state_defaults(self) -> dict[str, Tensor]:
        """Buffers a checkpoint saved before them may lack (valle.io.checkpoint
        .fill_state_defaults): without the variance estimate, the median durations it had."""
        return {"log_variance": torch.tensor(float("nan"))}

    @staticmethod
    def _track(buffer: Tensor, value: Tensor, momentum: float) -> None:
        """Running mean of ``value`` in ``buffer``, started at the first one."""
        buffer.copy_(
            torch.where(torch.isnan(buffer), value, (1 - momentum) * buffer + momentum * value)
        )

    def _rate(self, rate: Tensor) -> Tensor:
        fill = self.default_rate if not torch.isnan(self.default_rate) else torch.zeros(())
        return torch.where(torch.isnan(rate), fill.to(rate), rate)

    def forward(self, x: Tensor, lens: Tensor, rate: Tensor) -> Tensor:
        h = self.inp(x) + self.rate(self._rate(rate)[:, None, None])  # (B, S, C)
        return self.out(self.convs(h, lens))[..., 0]  # (B, S)

    def loss(self, x: Tensor, lens: Tensor, rate: Tensor, durations: Tensor) -> Tensor:
        """Mean squared error of ``log d`` over the valid tokens (each ``d >= 1``); in training
        it also tracks ``default_rate`` (running mean of the finite rates) and ``log_variance``
        (running mean of this loss)."""
        if self.training:
            with torch.no_grad():
                finite = rate[~torch.isnan(rate)]
                if finite.numel():
                    self._track(self.default_rate, finite.mean(), 0.01)  # the data's mean
        pred = self(x, lens, rate)
        mask = (torch.arange(x.shape[1], device=lens.device) < lens[:, None]) & (durations > 0)
        err = (pred - torch.log(durations.clamp(min=1).float())) ** 2
        loss = (err * mask).sum() / mask.sum().clamp(min=1)
        if self.training and mask.any():
            with torch.no_grad():
                # the current model's residual: a short window (about 20 steps), since the loss falls
                self._track(self.log_variance, loss.detach(), 0.05)
        return loss

    @torch.no_grad()
    def predict(self, x: Tensor, lens: Tensor, rate: Tensor) -> Tensor:
        """Durations (B, S) long: the mean ``round(exp(log d + s^2 / 2))`` (the median
        ``round(exp(log d))`` while ``log_variance`` is unknown), at least 1 on the valid
        tokens, 0 on padding."""
        log_d = self(x, lens, rate)
        if not torch.isnan(self.log_variance):
            log_d = log_d + 0.5 * self.log_variance.clamp(min=0)
        pred = torch.exp(log_d).round().clamp(min=1).long()
        valid = torch.arange(x.shape[1], device=lens.device) < lens[:, None]
        return pred * valid
