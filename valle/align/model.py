"""The aligner's acoustic model: a small CTC phoneme recogniser over log-mel frames.

Shape legend: B batch, T frames, F mel bins, C channels, V classes (phoneme ids + 1 blank).

A stack of residual dilated 1-D convolutions (kernel 5, dilations 1-2-4 twice: about +-0.36 s
of context at 80 Hz) maps normalised log-mel frames to per-frame logits over the symbol table's
ids plus one extra class, the CTC blank (id ``V - 1``). Convolutions rather than an LSTM: the
model must train in minutes on one CPU thread, and convolutions are several times faster there.
About 1.2M parameters at the default width.

The checkpoint (``aligner.pt``) holds the weights, this config, the feature config and the
symbol list, so ``durations`` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from valle.align.features import FeatureConfig
from valle.io.atomic import atomic_torch_save

__all__ = ["ModelConfig", "AcousticModel", "save_aligner", "load_aligner"]


@dataclass(frozen=True)
class ModelConfig:
    """Acoustic model settings.

    Attributes:
        channels: C, width of every convolution.
        dilations: one residual block per entry (kernel 5, this dilation).
        dropout: dropout after each block (training only).
        prior_scale: frame scores are ``log p(token | frame) - prior_scale * log p(token)``
            (scaled likelihoods of hybrid HMM systems), with ``p(token)`` the model's average
            posterior over the training frames; 0 (the default) turns it off. Tried against
            the blank-free forward sum's degenerate optimum (one frequent phoneme predicted
            everywhere, one of its tokens absorbing most frames): at 0.5 and 1.0 it did not
            prevent it; the constant-rate prior kept through training
            (``TrainConfig.prior_floor``) and the ``token_or_blank`` score did.
        score: what a frame scores for a token. ``"token_or_blank"``: ``log(p(token) +
            p(blank))``, a CTC blank frame belongs to the token whose spike is next to it (the
            blank runs are split at the spikes); ``"nonblank"``: the posterior renormalised
            without the blank.
        align_prior: weight of the diagonal (constant speaking rate) prior added to the scores
            in the Viterbi (:func:`valle.align.forward_sum.diagonal_prior`); 0 for none.
        align_prior_width: its width, a share of the utterance.
        phone_weight: in the Viterbi, weight of ``log q(token)`` (the posterior without the
            blank) added to a phoneme token's frame score, so that the frames between two CTC
            spikes go to the phoneme they sound like (:mod:`valle.align.scoring`); 0 for none.
        silence_weight: in the Viterbi, weight of ``log q(silence)`` (the non-blank mass of
            the punctuation classes) added to a ``_`` or punctuation token's frame score, so
            that separators take the frames that sound like a pause; 0 for none.
        separator_cost: in the Viterbi, nats taken off every frame of a ``_`` token, which
            keeps it to its one frame between words spoken without a pause; 0 for none.
            The three defaults were tuned on the mini corpus's dev cuts; all three 0 give the
            scores of the aligner before them (``--set`` in ``valle.bin.align durations``).
    """

    channels: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 1, 2, 4)
    dropout: float = 0.1
    prior_scale: float = 0.0
    score: str = "token_or_blank"
    align_prior: float = 0.0
    align_prior_width: float = 0.08
    phone_weight: float = 0.2
    silence_weight: float = 0.5
    separator_cost: float = 1.0

    def __post_init__(self) -> None:
        if self.score not in ("token_or_blank", "nonblank"):
            raise ValueError(f"score must be token_or_blank or nonblank, got {self.score!r}")
        for name in ("phone_weight", "silence_weight", "separator_cost"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**{**d, "dilations": tuple(d.get("dilations", cls.dilations))})


class _Block(nn.Module):
    def __init__(self, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 5, padding=2 * dilation, dilation=dilation)
        self.norm = nn.GroupNorm(1, channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        return x + self.drop(nn.functional.gelu(self.norm(self.conv(x))))


class AcousticModel(nn.Module):
    """Log-mel ``(B, T, F)`` -> CTC logits ``(B, T, V)``; the blank is the last class.

    Args:
        n_mels: F, input mel bins.
        num_symbols: size of the symbol table (classes ``0..num_symbols-1``).
        config: widths and dilations.
    """

    def __init__(self, n_mels: int, num_symbols: int, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.num_symbols = num_symbols
        self.config = config or ModelConfig()
        c = self.config.channels
        self.inp = nn.Conv1d(self.n_mels, c, 3, padding=1)
        self.blocks = nn.Sequential(
            *[_Block(c, d, self.config.dropout) for d in self.config.dilations]
        )
        self.out = nn.Conv1d(c, self.num_classes, 1)
        uniform = torch.full((num_symbols,), -math.log(max(1, num_symbols)))
        self.register_buffer("log_prior", uniform)  # (V - 1,) log p(token), non-blank classes

    @property
    def num_classes(self) -> int:
        return self.num_symbols + 1

    @property
    def blank(self) -> int:
        return self.num_symbols

    def frame_scores(self, logits: Tensor) -> Tensor:
        """Alignment scores ``(B, T, V - 1)`` of every non-blank class from logits ``(B, T, V)``
        (``config.score``), divided by the scaled class prior."""
        if self.config.score == "token_or_blank":
            logp = logits.log_softmax(-1)  # (B, T, V)
            scores = torch.logaddexp(logp[..., : self.blank], logp[..., self.blank :])
        else:
            scores = self.nonblank_log_posteriors(logits)  # (B, T, V - 1)
        return scores - self.config.prior_scale * self.log_prior

    def nonblank_log_posteriors(self, logits: Tensor) -> Tensor:
        """``(B, T, V - 1)`` log-posterior of every non-blank class, the blank left out."""
        return logits[..., : self.blank].log_softmax(-1)

    @torch.no_grad()
    def update_prior(self, logits: Tensor, lens: Tensor, momentum: float = 0.99) -> None:
        """Move ``log_prior`` towards the mean non-blank posterior of the valid frames."""
        post = logits[..., : self.blank].softmax(-1)  # (B, T, V - 1)
        T = logits.shape[1]
        valid = torch.arange(T, device=lens.device)[None, :] < lens[:, None]  # (B, T)
        mean = post[valid].mean(0).clamp_min(1e-8)  # (V - 1,)
        prior = momentum * self.log_prior.exp() + (1 - momentum) * mean
        self.log_prior.copy_(prior.log())

    def forward(self, feats: Tensor) -> Tensor:
        x = self.inp(feats.transpose(1, 2))  # (B, C, T)
        x = self.blocks(x)  # (B, C, T)
        return self.out(x).transpose(1, 2)  # (B, T, V)


def save_aligner(
    path: str | Path,
    model: AcousticModel,
    features: FeatureConfig,
    symbols: list[str],
    extras: dict[str, Any] | None = None,
) -> Path:
    """Write ``aligner.pt``: weights, configs and symbols (plain types only, weights-only safe)."""
    obj = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model": model.config.to_dict(),
        "features": features.to_dict(),
        "symbols": list(symbols),
        "n_mels": model.n_mels,
        **(extras or {}),
    }
    return atomic_torch_save(path, obj)


def load_aligner(path: str | Path) -> tuple[AcousticModel, FeatureConfig, list[str], dict]:
    """Read ``aligner.pt`` (safely): ``(model in eval mode, feature config, symbols, all)``."""
    from valle.io.checkpoint import load_checkpoint

    obj = load_checkpoint(path)
    if "state_dict" not in obj or "symbols" not in obj:
        raise ValueError(f"{path} is not an aligner checkpoint (python -m valle.bin.align train)")
    model = AcousticModel(
        int(obj["n_mels"]), len(obj["symbols"]), ModelConfig.from_dict(obj["model"])
    )
    model.load_state_dict(obj["state_dict"])
    model.eval()
    return model, FeatureConfig.from_dict(obj["features"]), list(obj["symbols"]), obj
