"""Stop policies: when a row of AR generation ends.

Shape legend: B batch, ``*E`` the layout's step shape, V classes.

The generate loop (:func:`valle.ar.generate.generate_ar`) asks the policy after every step
whether a row ends there, and bounds every row by its length limit itself. A policy may also
adjust the head's output before a step is drawn (``prepare``) and keep per-call state made
by ``begin`` from a :class:`DecodeContext`. The ending step is dropped unless the policy's
``keeps_last`` is True. Kinds that fit this contract:

- :class:`EosStop` (VALL-E): a step holding the EOS class ends the row.
- :class:`DurationStop` (RALL-E): ``begin`` reads the predicted durations from
  ``context.conditions``, ``prepare`` forbids EOS before ``D = sum(d)`` frames, and the row
  ends there.
- :class:`StopFlag` (MELLE): the latent head's output carries a stop logit; the row ends when its
  probability exceeds a threshold (``keeps_last`` = True: that frame is speech).
- VALL-E R's pointer stop: the step carries the phoneme pointer; the row ends when it passes
  the last phoneme (``context.text_lens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from valle.config import ComponentConfig, ConfigError, opt, register_kind

__all__ = [
    "DecodeContext",
    "DurationStop",
    "DurationStopConfig",
    "EosStop",
    "EosStopConfig",
    "StopConfig",
    "StopFlag",
    "StopFlagConfig",
    "StopPolicy",
]


@dataclass(frozen=True)
class DecodeContext:
    """What a stop policy may look at when a generate call begins."""

    text_lens: Tensor  # (B,) text tokens per row
    prompt_lens: Tensor  # (B,) prompt frames per row
    limit: Tensor  # (B,) the loop's step bound per row
    conditions: Mapping[str, Tensor] = field(default_factory=dict)  # e.g. durations (B, S)


class StopPolicy(Protocol):
    keeps_last: bool

    def begin(self, context: DecodeContext) -> Any:
        """Per-call state (None when the policy needs none)."""
        ...

    def prepare(self, out: Tensor, n: int, state: Any) -> Tensor:
        """The head's output of step ``n`` as the head should sample it."""
        ...

    def __call__(self, step: Tensor, out: Tensor, n: int, state: Any) -> Tensor:
        """(B,) bool: the row ends at step ``n`` (drawn ``step`` (B, *E) from ``out``)."""
        ...


class EosStop:
    """End a row at its first step holding the EOS class (VALL-E Sec 4.3); that step is
    dropped. For a grouped step, an EOS in any element ends the row."""

    keeps_last = False

    def __init__(self, eos_id: int) -> None:
        self.eos_id = eos_id

    def begin(self, context: DecodeContext) -> None:
        return None

    def prepare(self, out: Tensor, n: int, state: None) -> Tensor:
        return out

    def __call__(self, step: Tensor, out: Tensor, n: int, state: None) -> Tensor:
        is_eos = step == self.eos_id  # (B, *E)
        return is_eos.reshape(is_eos.shape[0], -1).any(-1)  # (B,)


class DurationStop:
    """End each row after ``D = sum(d)`` frames, ``d`` its phonemes' durations (RALL-E's
    duration-guided stop); an EOS before D is ignored (its class is masked out).

    ``context.conditions[key]`` holds the durations (B, S) in frames (0 on padding). With G
    frames per step a row makes ``ceil(D / G)`` steps. ``eos_id`` None: a layout without an
    EOS class (continuous frames; their head's stop flag is ignored).
    """

    keeps_last = False

    def __init__(
        self, eos_id: int | None, frames_per_step: int = 1, key: str = "durations"
    ) -> None:
        self.eos_id = eos_id
        self.frames_per_step = frames_per_step
        self.key = key

    def begin(self, context: DecodeContext) -> Tensor:
        if self.key not in context.conditions:
            raise ValueError(
                f"the duration stop needs conditions[{self.key!r}] (B, S) durations in frames"
            )
        frames = context.conditions[self.key].sum(-1)  # (B,)
        G = self.frames_per_step
        return (frames + G - 1) // G  # (B,) steps

    def prepare(self, out: Tensor, n: int, state: Tensor) -> Tensor:
        if self.eos_id is None:
            return out
        early = (n < state).view(-1, *(1,) * (out.dim() - 2))  # (B, 1...)
        out = out.clone()
        out[..., self.eos_id] = torch.where(early, float("-inf"), out[..., self.eos_id])
        return out

    def __call__(self, step: Tensor, out: Tensor, n: int, state: Tensor) -> Tensor:
        return state <= n  # (B,) the row has its D frames


class StopFlag:
    """End a row when the head's stop probability ``sigmoid(out[..., -1])`` exceeds
    ``threshold`` (MELLE Sec 3.2: a linear stop-prediction layer on each step's hidden state,
    trained with BCE). The step that raises the flag is speech: it is kept
    (``keeps_last``). The head's output (B, ...) must carry the stop logit last.
    """

    keeps_last = True

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"stop threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold

    def begin(self, context: DecodeContext) -> None:
        return None

    def prepare(self, out: Tensor, n: int, state: None) -> Tensor:
        return out

    def __call__(self, step: Tensor, out: Tensor, n: int, state: None) -> Tensor:
        return torch.sigmoid(out[..., -1].float()) > self.threshold  # (B,)


@dataclass(frozen=True)
class StopConfig(ComponentConfig):
    """A stop policy's settings, chosen by ``kind`` (eos | duration | stop_flag).

    ``reads_durations``: the policy reads the rows' phoneme durations when a call begins
    (``context.conditions``), so the AR must predict or be given them; the variants read it
    instead of asking for the kind. ``reads_pointer``: it stops on the phoneme pointer of a
    phoneme-aligned decoder (VALL-E R). What it needs from the layout its ``build`` checks."""

    __kinds__: ClassVar[dict[str, type]] = {}
    reads_durations: ClassVar[bool] = False
    reads_pointer: ClassVar[bool] = False

    def build(self, layout: Any) -> StopPolicy:
        raise NotImplementedError


@register_kind("eos")
@dataclass(frozen=True)
class EosStopConfig(StopConfig):
    """Stop at the layout's EOS class."""

    kind: str = opt("eos", "when generation stops: eos | duration")

    def build(self, layout: Any) -> StopPolicy:
        eos = getattr(layout, "eos_id", None)
        if eos is None:
            raise ConfigError(
                f"stop kind 'eos' needs a layout with an EOS class, not {layout!r} "
                "(a layout of continuous frames stops by its head's flag: stop_flag)"
            )
        return EosStop(eos)


@register_kind("duration")
@dataclass(frozen=True)
class DurationStopConfig(StopConfig):
    """Stop after the sum of the phonemes' durations (RALL-E)."""

    reads_durations: ClassVar[bool] = True

    kind: str = opt("duration", "when generation stops: eos | duration")
    key: str = opt("durations", "generate conditions key of the (B, S) durations in frames")

    def build(self, layout: Any) -> StopPolicy:
        eos = getattr(layout, "eos_id", None)
        if eos is None and not getattr(layout, "continuous", False):
            raise ConfigError(
                f"stop kind 'duration' needs a layout with an EOS class or of continuous "
                f"frames, not {layout!r}"
            )
        return DurationStop(eos, layout.frames_per_step, self.key)


@register_kind("stop_flag")
@dataclass(frozen=True)
class StopFlagConfig(StopConfig):
    """Stop when the head's stop probability exceeds a threshold (MELLE)."""

    kind: str = opt("stop_flag", "when generation stops: eos | duration | stop_flag")
    threshold: float = opt(0.5, "stop probability above which a row ends, in (0, 1)")

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"stop.threshold must be in (0, 1), got {self.threshold}")

    def build(self, layout: Any) -> StopPolicy:
        if not getattr(layout, "continuous", False):
            # a code layout's head gives class logits: its last one (EOS) is no stop flag
            raise ConfigError(
                f"stop kind 'stop_flag' needs a layout of continuous frames whose head "
                f"outputs a stop logit, not {layout!r} (a code layout stops at its EOS "
                "class: eos or duration)"
            )
        return StopFlag(self.threshold)
