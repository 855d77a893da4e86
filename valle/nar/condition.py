"""The acoustic-condition split of NAR training (VALL-E 2, Sec 3.3), a NAR prompt policy.

Shape legend: B batch, T frames, P condition (prompt) frames, Q codebooks.

VALL-E 2 trains on utterance-wise (speech, transcription) pairs only. Because "we have
access to all 8 code sequences of the prompt during inference", the NAR is trained with the
utterance's codes "explicitly split [...] into an acoustic condition ``C_{<T'}`` and target
code sequences ``C_{>=T'}`` with a randomly sampled length ``T'``"; it predicts codebook j of
the target from the text (the whole transcript), all Q codebooks of the condition and the
target's codebooks ``< j``, and the loss covers the target only (``L_NAR_j = -log p(c_{>=T',j}
| x, C_{<T'}, C_{>=T',<j})``). At inference the condition is the prompt and the text is the
prompt transcript followed by the target text, as in training.

How ``T'`` is drawn: the condition is a prefix whose length is the larger of half the
utterance and a random length of ``min_seconds`` to ``max_seconds`` (3 to 30 s at the paper's
scale), ``T' = max(fraction * T, U[min_seconds, max_seconds] * frame_rate)``. It is capped at
``T - 1`` frames so that at least one frame is left to score (a draw longer than the utterance
would otherwise leave no target); an utterance of one frame has no condition. The random
length only matters when it exceeds ``fraction * T``, so the condition spans from half the
utterance to all but its last frame. Seconds become frames with each row's code frame rate,
a codec fact that the batch carries under ``frame_rate``
(:class:`~valle.data.featurizers.FrameRate`, which the variant asks for in its data request),
never a constant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from valle.config import ConfigError, TransformerConfig, opt
from valle.data import batch as B_
from valle.data.featurizers import FRAME_RATE
from valle.nar.prompts import PromptPolicyBase, PromptSplit, slice_rows

__all__ = [
    "AcousticConditionConfig",
    "AcousticConditionPrefix",
    "ConditionNARConfig",
    "condition_lengths",
]


def condition_lengths(lens: Tensor, random_frames: Tensor, fraction: float = 0.5) -> Tensor:
    """``T'`` per row: ``max(round(fraction * T), random_frames)`` capped at ``T - 1`` (>= 0).

    lens (B,) long frames, random_frames (B,) frames of the random draw -> (B,) long.
    """
    half = torch.round(fraction * lens.double()).long()  # (B,)
    drawn = torch.round(random_frames.double()).long()  # (B,)
    return torch.minimum(torch.maximum(half, drawn), (lens - 1).clamp(min=0))  # (B,)


class AcousticConditionPrefix(PromptPolicyBase):
    """Condition = the first ``T'`` frames of the utterance, target = the rest (VALL-E 2 Sec 3.3).

    ``T'`` as in the module docstring; the loss covers the target frames only (they are not in
    the condition). The text is the whole transcript, so at inference the NAR reads the
    prompt's transcript followed by the target text (``text_includes_prompt``).
    """

    text_includes_prompt = True

    def __init__(
        self, min_seconds: float = 3.0, max_seconds: float = 30.0, fraction: float = 0.5
    ) -> None:
        if not 0.0 <= min_seconds <= max_seconds:
            raise ValueError(
                f"need 0 <= min_seconds <= max_seconds, got {min_seconds}, {max_seconds}"
            )
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        self.min_seconds, self.max_seconds, self.fraction = min_seconds, max_seconds, fraction

    def __call__(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> PromptSplit:
        if FRAME_RATE not in batch:
            raise KeyError(
                "the acoustic-condition split needs batch['frame_rate'] (the codec's frames per "
                "second; the FrameRate featurizer of valle.data.featurizers, which the variant's "
                "data_request asks for)"
            )
        codes, lens = batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS]  # (B, T, Q), (B,)
        rate = batch[FRAME_RATE].reshape(len(lens), -1)[:, 0].to(lens.device)  # (B,)
        u = torch.rand(len(lens), generator=generator, dtype=torch.float64).to(lens.device)
        seconds = self.min_seconds + (self.max_seconds - self.min_seconds) * u  # (B,)
        p = condition_lengths(lens, seconds * rate.double(), self.fraction)  # (B,)
        prompt = slice_rows(codes, torch.zeros_like(p), p)  # (B, P, Q)
        target = slice_rows(codes, p, lens - p)  # (B, T - P, Q)
        return PromptSplit(prompt, p, target, lens - p)


@dataclass(frozen=True)
class AcousticConditionConfig:
    """Settings of :class:`AcousticConditionPrefix` (VALL-E 2 Sec 3.3)."""

    min_seconds: float = opt(
        3.0, "shortest random condition (s; paper: 3, for utterances of up to ~30 s)"
    )
    max_seconds: float = opt(
        30.0, "longest random condition (s; paper: 30); capped at all but the last frame"
    )
    fraction: float = opt(
        0.5, "the condition is at least this share of the utterance (paper: half), in [0, 1]"
    )

    def __post_init__(self) -> None:
        try:
            self.build()
        except ValueError as e:
            raise ConfigError(str(e)) from e

    def build(self) -> AcousticConditionPrefix:
        return AcousticConditionPrefix(self.min_seconds, self.max_seconds, self.fraction)


@dataclass(frozen=True)
class ConditionNARConfig:
    """A NAR for codebooks 2..Q trained with the acoustic-condition split (VALL-E 2 Sec 3.3).

    The same decoder as VALL-E's (:class:`valle.nar.decoder.NARDecoder`); ``prompt`` holds the
    split's settings instead of ``valle.config.PromptConfig``'s ratios.
    """

    backbone: TransformerConfig = opt(help="transformer size", factory=TransformerConfig)
    stage: str = opt(
        "code_id_token", "stage conditioning: code_id_token (VALL-E 2) | adaln (VALL-E)"
    )
    prompt: AcousticConditionConfig = opt(
        help="training split: acoustic condition (a prefix) and target",
        factory=AcousticConditionConfig,
    )
