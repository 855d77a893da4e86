"""Prompt-statistics matching: a post-filter that gives generated log-mel frames the per-bin
mean and spread of the acoustic prompt's speech.

Shape legend: T generated frames, P prompt frames, F mel bins.

A model trained with a regression loss (MELLE's L1 + L2 on log-mel frames) predicts the
conditional mean, which is smoother than speech: its frames vary less over time than real
frames and drift toward the average voice of the training data. Statistical parametric
synthesis met the same over-smoothing and compensated the global variance of the generated
parameters (Toda and Tokuda 2007, "A speech parameter generation algorithm considering global
variance for HMM-based speech synthesis"; HTS's GV post-filter), with the variance of the
training speaker. In zero-shot TTS the only sample of the speaker is the prompt, so this filter
takes its targets from the prompt's speech frames:

    y[t, f] = (x[t, f] - mean_x[f]) * (std_p[f] / std_x[f]) ** strength + mean_p[f]

where ``mean`` and ``std`` are taken over the speech frames (frame energy above the
``speech_quantile`` of the utterance's frames, so pauses do not set the voice). ``strength`` 0
matches the mean only (the long-term spectral envelope, i.e. timbre), 1 also the spread.

Not in the MELLE paper; off unless a config sets ``prompt_stats``. Measured on the mini main
job's checkpoint (egs/mini/EXPERIMENTS.md, session 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from valle.config import ConfigError, opt

__all__ = ["PromptStatsConfig", "match_prompt_statistics", "speech_frames", "speech_mask"]


@dataclass(frozen=True)
class PromptStatsConfig:
    """Inference post-filter: generated frames take the prompt's per-bin mean and spread."""

    strength: float = opt(
        1.0, "exponent of the spread ratio std_prompt / std_output (0: mean only, 1: full)"
    )
    speech_quantile: float = opt(
        0.3,
        "frames whose mean log-mel is at or below this quantile are pauses, left out of "
        "the statistics (0..1)",
    )
    min_frames: int = opt(20, "fewer speech frames than this in prompt or output: unchanged")

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"prompt_stats.strength must be in [0, 1], got {self.strength}")
        if not 0.0 <= self.speech_quantile < 1.0:
            raise ConfigError(
                f"prompt_stats.speech_quantile must be in [0, 1), got {self.speech_quantile}"
            )
        if self.min_frames < 2:
            raise ConfigError(f"prompt_stats.min_frames must be >= 2, got {self.min_frames}")

    def __call__(self, frames: Tensor, prompt: Tensor) -> Tensor:
        return match_prompt_statistics(frames, prompt, self)


def speech_mask(mel: Tensor, quantile: float) -> Tensor:
    """(T,) bool: the frames of ``mel`` (T, F) whose mean log-mel is above its ``quantile``."""
    energy = mel.mean(-1)  # (T,)
    return energy > torch.quantile(energy.float(), quantile).to(energy)


def speech_frames(mel: Tensor, quantile: float) -> Tensor:
    """The frames (N, F) of ``mel`` (T, F) that :func:`speech_mask` keeps."""
    return mel[speech_mask(mel, quantile)]


def match_prompt_statistics(frames: Tensor, prompt: Tensor, config: PromptStatsConfig) -> Tensor:
    """``frames`` (T, F) with the per-bin mean and spread of ``prompt``'s (P, F) speech frames
    (see the module docstring); unchanged when either has too few speech frames."""
    if frames.shape[-1] != prompt.shape[-1]:
        raise ValueError(
            f"output frames have {frames.shape[-1]} bins, the prompt {prompt.shape[-1]}"
        )
    if frames.shape[0] < config.min_frames or prompt.shape[0] < config.min_frames:
        return frames
    x = frames.float()
    out_speech = speech_frames(x, config.speech_quantile)
    prompt_speech = speech_frames(prompt.float(), config.speech_quantile)
    if out_speech.shape[0] < config.min_frames or prompt_speech.shape[0] < config.min_frames:
        return frames
    mean_x, mean_p = out_speech.mean(0), prompt_speech.mean(0)  # (F,)
    ratio = (prompt_speech.std(0) / out_speech.std(0).clamp(min=1e-3)) ** config.strength
    return ((x - mean_x) * ratio + mean_p).to(frames.dtype)
