"""Continuous-frame AR parts: a mel layout with a reduction factor, a pre-net, a latent head
and the losses of a mel language model (MELLE, Meng et al. 2024, arXiv 2407.08551).

Shape legend: B batch, T frames, F mel bins, r frames per step (reduction factor),
N steps, E = r * F step width, D model width, H hidden width.

- :class:`MelFrameLayout`: one AR step = r consecutive mel frames flattened to (r * F,)
  (MELLE Sec 3.4, reduction factor). As VALL-E 2's groups, a row's ``T mod r`` first frames
  are dropped so that every step is whole and a prompt's steps end at its last frame. BOS is
  an all-zero step. There is no EOS step: the stop flag of the last step ends a row.
- :class:`PreNet`: 3-layer MLP from a step to the model width, with dropout on in training
  *and* at inference (MELLE Sec 3.2, as Tacotron 2); its draws can come from an explicit
  generator (:meth:`PreNet.drawing_from`).
- :class:`LatentHead`: from the hidden state, a linear layer gives ``mu`` and
  ``log sigma^2`` (E each) and a stop logit; ``z = mu + sigma * eps`` (reparameterisation)
  goes through a 3-layer MLP with a residual to ``y'`` (MELLE Sec 3.2, latent sampling
  module). Without latent sampling (``latent=False``, the paper's ablation) ``y' = mu + MLP(mu)``.
- Loss terms (MELLE Sec 3.3), each per frame (summed over bins) and averaged over the valid
  frames, so their relative scale is the paper's ``sum_t``:
  :func:`regression_loss`, :func:`kl_loss`, :func:`flux_loss`, :func:`stop_loss`, and
  :func:`kl_weight` (0 for the first steps, then lambda).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from valle.ar.layouts import ARTargets
from valle.config import ConfigError, opt
from valle.sampling.latent import GaussianSampler

__all__ = [
    "LatentConfig",
    "LatentHead",
    "LatentLossConfig",
    "LatentSamplerConfig",
    "MelFeatureConfig",
    "PreNetConfig",
    "LatentOutput",
    "MelFrameLayout",
    "PreNet",
    "flux_loss",
    "kl_loss",
    "kl_weight",
    "regression_loss",
    "stop_loss",
]


# --------------------------------------------------------------------------- layout


class MelFrameLayout:
    """r mel frames per AR step, flattened: frames (B, T, F) <-> steps (B, N, r * F).

    ``continuous``: its steps are real-valued frames, not code ids (readers such as the
    diagnostics and the stop-flag stop ask the layout this, not its class)."""

    continuous = True

    def __init__(self, n_mels: int, reduction: int = 1) -> None:
        if n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {n_mels}")
        if not 1 <= reduction <= 5:
            raise ValueError(f"reduction factor must be in 1..5 (MELLE Sec 3.4), got {reduction}")
        self.n_mels = n_mels
        self.frames_per_step = reduction
        self.step_shape: tuple[int, ...] = (reduction * n_mels,)

    @property
    def step_dim(self) -> int:
        return self.step_shape[0]

    def _check(self, frames: Tensor) -> None:
        if frames.dim() != 3 or frames.shape[-1] != self.n_mels:
            raise ValueError(
                f"expected mel frames (B, T, F={self.n_mels}), got shape {tuple(frames.shape)}"
            )

    def to_steps(self, frames: Tensor, lens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Frames (B, T, F) -> whole steps (B, N, r*F), steps per row (B,), valid (B, N, r*F).

        Row b keeps its last ``lens[b] - lens[b] mod r`` frames (VALL-E 2's rule, so a
        prompt's steps end at its last frame)."""
        self._check(frames)
        r = self.frames_per_step
        B, T, Fm = frames.shape
        n = lens // r  # (B,) whole steps per row
        N = T // r
        skip = lens - n * r  # (B,) frames dropped at the start of each row
        frame = skip[:, None] + torch.arange(N * r, device=lens.device)  # (B, N*r)
        index = frame.clamp(max=max(T - 1, 0))[..., None].expand(B, N * r, Fm)
        steps = frames.gather(1, index).reshape(B, N, r * Fm)  # (B, N, r*F)
        valid = (torch.arange(N, device=lens.device) < n[:, None])[..., None].expand(steps.shape)
        return steps, n, valid

    def with_bos(self, steps: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        bos = steps.new_zeros(steps.shape[0], 1, *steps.shape[2:])  # (B, 1, r*F)
        return torch.cat([bos, steps], dim=1), lens + 1

    def teacher_forcing(self, frames: Tensor, lens: Tensor) -> ARTargets:
        """Inputs ``[BOS, s_1 .. s_{N-1}]`` (B, N, r*F), targets ``[s_1 .. s_N]``, mask of the
        valid target steps (B, N, r*F); ``lens`` = steps per row. No EOS step: the stop
        flag of step N is the end (see :func:`stop_targets`)."""
        steps, n, valid = self.to_steps(frames, lens)
        inputs, _ = self.with_bos(steps, n)
        return ARTargets(inputs[:, : steps.shape[1]], n, steps, valid)

    def from_steps(self, steps: Tensor) -> Tensor:
        """One item's steps (N, r*F) -> frames (N*r, F); batched (B, N, r*F) -> (B, N*r, F)."""
        return steps.reshape(*steps.shape[:-2], -1, self.n_mels)

    def max_steps(self, frames: Tensor) -> Tensor:
        r = self.frames_per_step
        return (frames + r - 1) // r

    def embedding(self, d_model: int) -> nn.Module:
        return PreNet(self.step_dim, d_model)


def stop_targets(lens: Tensor, length: int) -> Tensor:
    """(B, N) float stop labels: 1 at each row's last step (index ``lens - 1``), else 0."""
    idx = torch.arange(length, device=lens.device)
    return (idx[None, :] == (lens[:, None] - 1)).float()


# --------------------------------------------------------------------------- pre-net


class PreNet(nn.Module):
    """Step (..., E) -> (..., D): ``layers`` linear layers with ReLU and dropout after each
    hidden one (MELLE Sec 3.2: a 3-layer MLP; dropout 0.5 in training and at inference).

    ``dropout`` applies while training, ``inference_dropout`` in eval mode (MELLE keeps
    it on when generating; 0 makes generation deterministic given the sampler). The masks
    are drawn from the generator set by :meth:`drawing_from` (else the global RNG)."""

    def __init__(
        self,
        in_dim: int,
        d_model: int,
        hidden: int = 256,
        layers: int = 3,
        dropout: float = 0.5,
        inference_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"pre-net layers must be >= 1, got {layers}")
        for p in (dropout, inference_dropout):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"pre-net dropout must be in [0, 1), got {p}")
        dims = [in_dim] + [hidden] * (layers - 1) + [d_model]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:], strict=False))
        self.dropout = dropout
        self.inference_dropout = inference_dropout
        self.generator: torch.Generator | None = None

    @contextlib.contextmanager
    def drawing_from(self, generator: torch.Generator | None) -> Iterator[None]:
        """Draw the dropout masks from ``generator`` inside the block."""
        old, self.generator = self.generator, generator
        try:
            yield
        finally:
            self.generator = old

    def _drop(self, x: Tensor) -> Tensor:
        p = self.dropout if self.training else self.inference_dropout
        if p == 0.0:
            return x
        u = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=torch.float32)
        return x * (u >= p).to(x.dtype) / (1.0 - p)

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self._drop(F.relu(x))
        return x  # (..., D)


# --------------------------------------------------------------------------- head


class LatentOutput:
    """The head's output split: ``mu``, ``logvar`` (None without latent sampling) (..., E) and
    the stop logit (...,)."""

    def __init__(self, mu: Tensor, logvar: Tensor | None, stop: Tensor) -> None:
        self.mu = mu
        self.logvar = logvar
        self.stop = stop


class LatentHead(nn.Module):
    """Hidden (..., D) -> ``[mu, log sigma^2, stop logit]`` (..., 2E + 1), or ``[mu, stop]``
    (..., E + 1) without latent sampling; :meth:`frames` maps a draw to ``y'``.

    MELLE Sec 3.2: ``mu, log sigma^2 = Linear(e_t)``; ``z_t = mu + sigma * eps``,
    ``eps ~ N(0, I)``; ``y'_t = z_t + MLP(z_t)`` (3 layers, residual); the stop logit is a
    linear layer on ``e_t``. ``z`` lives in the (reduced) mel space, so the KL term can pull
    the distribution towards ``N(y_t, I)``.
    """

    def __init__(self, d_model: int, step_dim: int, latent: bool = True, hidden: int = 512) -> None:
        super().__init__()
        self.step_dim = step_dim
        self.latent = latent
        self.proj = nn.Linear(d_model, step_dim * (2 if latent else 1))
        self.stop_proj = nn.Linear(d_model, 1)
        self.mlp = nn.Sequential(
            nn.Linear(step_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, step_dim),
        )

    def forward(self, h: Tensor) -> Tensor:
        return torch.cat([self.proj(h), self.stop_proj(h)], dim=-1)  # (..., 2E + 1)

    def split(self, out: Tensor) -> LatentOutput:
        E = self.step_dim
        mu = out[..., :E]
        logvar = out[..., E : 2 * E] if self.latent else None
        return LatentOutput(mu, logvar, out[..., -1])

    def frames(self, z: Tensor) -> Tensor:
        """A draw (..., E) -> ``y'`` (..., E)."""
        return z + self.mlp(z)

    def draw(self, parts: LatentOutput, sampler: Any, generator: torch.Generator | None) -> Tensor:
        """``z`` (..., E): ``sampler(mu, logvar, generator)`` (or ``mu`` without latent)."""
        if parts.logvar is None:
            return parts.mu
        return sampler(parts.mu, parts.logvar, generator)

    # the ARHead protocol (generation)
    def loss(self, out: Tensor, targets: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError(
            "the latent head's training terms need the post-net and the step count; "
            "the MELLE model composes them (valle.variants.melle.Melle.loss)"
        )

    def start(self, prompt_steps: Tensor, prompt_lens: Tensor, steps: int) -> None:
        return None

    def sample(
        self,
        out: Tensor,
        memory: None,
        sampler: GaussianSampler,
        generator: torch.Generator | None,
    ) -> Tensor:
        """One step ``y'`` (B, E) from the output (B, 2E + 1) of the current step."""
        return self.frames(self.draw(self.split(out), sampler, generator))


# --------------------------------------------------------------------------- losses


def _per_frame_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of per-frame values (B, T) over the valid frames (B, T) bool (0 when none)."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp(min=1.0)


def regression_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``||y - pred||_1 + ||y - pred||_2^2`` per frame, averaged over valid frames (MELLE
    Eq. of L_reg, for one of y' and y''). pred, target (B, T, F); mask (B, T) bool."""
    d = (pred - target).float()
    return _per_frame_mean(d.abs().sum(-1) + d.pow(2).sum(-1), mask)


def kl_loss(mu: Tensor, logvar: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``KL(N(mu, sigma^2) || N(y, I)) = 1/2 sum_i (sigma_i^2 + (mu_i - y_i)^2 - 1 -
    log sigma_i^2)`` per frame, averaged over valid frames (MELLE Sec 3.3, L_KL).
    mu, logvar, target (B, T, F); mask (B, T)."""
    mu, logvar, y = mu.float(), logvar.float(), target.float()
    per = 0.5 * (logvar.exp() + (mu - y).pow(2) - 1.0 - logvar).sum(-1)  # (B, T)
    return _per_frame_mean(per, mask)


def flux_loss(mu: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Spectrogram flux ``-||mu_t - y_{t-1}||_1`` per frame t >= 1 with a valid previous
    frame, averaged (MELLE Sec 3.3, L_flux): rewards frames that move away from the previous
    ground-truth frame, against the over-smoothed static output regression alone favours.
    mu, target (B, T, F); mask (B, T)."""
    if mu.shape[1] < 2:
        return mu.new_zeros(()).float()
    d = (mu[:, 1:] - target[:, :-1]).float().abs().sum(-1)  # (B, T-1)
    both = mask[:, 1:] & mask[:, :-1]
    return -_per_frame_mean(d, both)


def stop_loss(logits: Tensor, labels: Tensor, mask: Tensor, pos_weight: float = 100.0) -> Tensor:
    """BCE of the stop logits (B, N) against 0/1 labels, positives weighted by ``pos_weight``
    (MELLE Sec 3.3: the one stop frame per utterance is rare), averaged over valid steps."""
    w = torch.tensor(pos_weight, dtype=torch.float32, device=logits.device)
    per = F.binary_cross_entropy_with_logits(
        logits.float(), labels.float(), pos_weight=w, reduction="none"
    )  # (B, N)
    return _per_frame_mean(per, mask)


def kl_weight(step: int | None, weight: float, warmup_steps: int) -> float:
    """MELLE Sec 4.1: lambda is 0 for the first ``warmup_steps`` training steps, then
    ``weight``. ``step`` None (not training, or a caller that does not count): ``weight``."""
    if step is None:
        return weight
    return 0.0 if step < warmup_steps else weight


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class MelFeatureConfig:
    """The log-mel frames the model reads and writes (a :class:`~valle.codec.mel.MelConfig`).

    Defaults: MELLE Sec 4.1 (16 kHz, 80 bins, n_fft 1024, hop 256, 80-7600 Hz, log10)."""

    sample_rate: int = opt(16000, "Hz of the waves the frames are made from")
    n_fft: int = opt(1024, "FFT size (samples)")
    win_length: int = opt(1024, "Hann window length (samples, <= n_fft)")
    hop_length: int = opt(256, "frame shift (samples)")
    n_mels: int = opt(80, "F, mel bins (count)")
    fmin: float = opt(80.0, "lowest mel filter edge (Hz)")
    fmax: float = opt(7600.0, "highest mel filter edge (Hz)")
    mel_scale: str = opt("slaney", "mel warping: htk | slaney")
    norm: str | None = opt("slaney", "filter normalisation: slaney | null")
    power: float = opt(1.0, "1.0 magnitude | 2.0 power before the filterbank")
    log_base: str = opt("10", "log of the mel: e | 10")
    log_floor: float = opt(1e-5, "mel clamped to at least this before the log")

    def mel_config(self) -> Any:
        from valle.codec.mel import MelConfig

        return MelConfig(**{k: getattr(self, k) for k in self.__dataclass_fields__})

    def __post_init__(self) -> None:
        try:
            self.mel_config()
        except ValueError as e:
            raise ConfigError(str(e)) from e


@dataclass(frozen=True)
class PreNetConfig:
    """The pre-net over each step's frames (MELLE Sec 3.2)."""

    hidden: int = opt(256, "hidden width (channels)")
    layers: int = opt(3, "linear layers (count)")
    dropout: float = opt(0.5, "dropout in training, in [0, 1)")
    inference_dropout: float = opt(
        0.5, "dropout when generating, in [0, 1) (MELLE keeps 0.5; 0: deterministic)"
    )

    def build(self, step_dim: int, d_model: int) -> PreNet:
        return PreNet(
            step_dim, d_model, self.hidden, self.layers, self.dropout, self.inference_dropout
        )


@dataclass(frozen=True)
class LatentConfig:
    """The latent sampling module (MELLE Sec 3.2)."""

    hidden: int = opt(512, "hidden width of the 3-layer residual MLP z -> y' (channels)")


@dataclass(frozen=True)
class LatentSamplerConfig:
    """How a step's latent is drawn when generating: ``z = mu + scale * sigma * eps``."""

    scale: float = opt(1.0, "noise scale (>= 0; 1: MELLE's sampling, 0: the mean)")

    def __post_init__(self) -> None:
        if not self.scale >= 0:
            raise ConfigError(f"sampler.scale must be >= 0, got {self.scale}")

    def build(self) -> GaussianSampler:
        return GaussianSampler(self.scale)


@dataclass(frozen=True)
class LatentLossConfig:
    """Weights of MELLE's training objective (Sec 3.3, values of Sec 4.1):
    ``L = L_reg + lambda L_KL + beta L_flux + gamma L_stop``."""

    kl_weight: float = opt(0.1, "lambda, weight of the KL term after the warm-up (>= 0)")
    kl_warmup_steps: int = opt(10000, "training steps with lambda = 0 (count)")
    flux_weight: float = opt(0.5, "beta, weight of the spectrogram flux term (>= 0; 0: off)")
    stop_weight: float = opt(1.0, "gamma, weight of the stop BCE (>= 0)")
    stop_pos_weight: float = opt(100.0, "BCE weight of the positive (stop) step (> 0)")

    def __post_init__(self) -> None:
        if min(self.kl_weight, self.flux_weight, self.stop_weight, self.kl_warmup_steps) < 0:
            raise ConfigError(f"loss weights and kl_warmup_steps must be >= 0, got {self}")
        if not self.stop_pos_weight > 0:
            raise ConfigError(f"stop_pos_weight must be > 0, got {self.stop_pos_weight}")
