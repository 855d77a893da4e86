"""Acoustic prompt providers: which codes a training example uses as its speaker prompt.

Shape legend: T code frames, P prompt frames, Q codebooks.

VALL-E conditions the NAR stages on an acoustic prompt: during training "we randomly crop a
waveform ... of the same speaker" — in the paper a 3 s segment (VALL-E sec. 4.2.2 and 5.1; the
3-second enrolled recording of sec. 1). A provider is a component chosen by type
(DESIGN.md sec. 2), replacing a ``prefix_mode`` integer:

- :class:`SameSpeakerPrompt`: a ~3 s crop of ANOTHER utterance of the same speaker (the paper's
  setting); falls back to a prefix of the same utterance when the speaker has one utterance.
- :class:`PrefixPrompt`: a prefix of the same utterance.

Both are deterministic given ``seed``, the epoch (``set_epoch``) and the cut id, whatever the
batch composition or worker that asks.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np
import torch
from lhotse.cut import Cut

from valle.data.tokenize import CODES_FIELD

logger = logging.getLogger(__name__)

__all__ = ["PromptProvider", "SameSpeakerPrompt", "PrefixPrompt", "load_codes", "frame_rate_of"]


def load_codes(cut: Cut) -> torch.Tensor:
    """A cut's codes as a long tensor ``(T, Q)``."""
    if not cut.has_custom(CODES_FIELD):
        raise ValueError(
            f"cut {cut.id} has no '{CODES_FIELD}' field; run the codec-token stage (stage 2)"
        )
    arr = cut.load_custom(CODES_FIELD)  # (T, Q)
    return torch.from_numpy(np.asarray(arr, dtype=np.int64))


def frame_rate_of(cut: Cut) -> float:
    """Code frames per second of a cut's stored codes."""
    return 1.0 / float(cut.custom[CODES_FIELD].frame_shift)


def _speaker(cut: Cut) -> str | None:
    return cut.supervisions[0].speaker if cut.supervisions else None


class PromptProvider(ABC):
    """Gives the acoustic prompt codes ``(P, Q)`` for a target cut."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose other prompts each epoch (still deterministic)."""
        self.epoch = epoch

    def _rng(self, cut: Cut) -> random.Random:
        return random.Random(f"{self.seed}/{self.epoch}/{cut.id}")

    @abstractmethod
    def __call__(self, cut: Cut, codes: torch.Tensor) -> torch.Tensor:
        """Return the prompt ``(P, Q)`` for ``cut`` whose own codes are ``codes`` ``(T, Q)``."""

    @abstractmethod
    def source(self, cut: Cut) -> str:
        """Id of the cut the prompt of ``cut`` is taken from (for tests and logs)."""

    def start(self, cut: Cut) -> int:
        """Frame of ``cut``'s own codes where its prompt was copied from, -1 for another
        utterance (the batch's ``prompt_start``: a model leaves copied frames out of its loss).
        """
        return 0 if self.source(cut) == cut.id else -1


class PrefixPrompt(PromptProvider):
    """The first ``duration`` seconds of the same utterance, at most ``max_fraction`` of it.

    With this provider the target ``audio_codes`` stay the whole utterance; a model that uses
    the prefix as context splits the target itself (the batch contract keeps the two apart).
    """

    def __init__(self, duration: float = 3.0, max_fraction: float = 0.5, seed: int = 0) -> None:
        super().__init__(seed)
        if duration <= 0 or not 0 < max_fraction <= 1:
            raise ValueError(
                f"need duration > 0 and 0 < max_fraction <= 1, got {duration}, {max_fraction}"
            )
        self.duration = duration
        self.max_fraction = max_fraction

    def __call__(self, cut: Cut, codes: torch.Tensor) -> torch.Tensor:
        t = codes.shape[0]
        p = min(round(self.duration * frame_rate_of(cut)), max(1, int(t * self.max_fraction)))
        return codes[:p]  # (P, Q)

    def source(self, cut: Cut) -> str:
        return cut.id


class SameSpeakerPrompt(PromptProvider):
    """A ``duration``-second random crop of another utterance of the same speaker.

    VALL-E sec. 5.1 (3 s enrolled recording). Speakers with a single utterance (or cuts without
    a speaker) get :class:`PrefixPrompt` of their own utterance instead.

    Args:
        cuts: the pool the other utterances come from (usually the same split as the targets).
        duration: prompt length in seconds (shorter utterances are used whole).
        seed: makes the choice of utterance and crop reproducible.
    """

    def __init__(self, cuts: Iterable[Cut], duration: float = 3.0, seed: int = 0) -> None:
        super().__init__(seed)
        if duration <= 0:
            raise ValueError(f"prompt duration must be > 0 seconds, got {duration}")
        self.duration = duration
        self.fallback = PrefixPrompt(duration=duration, seed=seed)
        self._cuts: dict[str, Cut] = {}
        self._by_speaker: dict[str, list[str]] = {}
        for cut in cuts:
            self._cuts[cut.id] = cut
            spk = _speaker(cut)
            if spk is not None:
                self._by_speaker.setdefault(spk, []).append(cut.id)
        for ids in self._by_speaker.values():
            ids.sort()
        single = sum(1 for ids in self._by_speaker.values() if len(ids) == 1)
        if single:
            logger.info("%d speaker(s) have one utterance: their prompts are own prefixes", single)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.fallback.set_epoch(epoch)

    def _others(self, cut: Cut) -> list[str]:
        spk = _speaker(cut)
        if spk is None:
            return []
        return [i for i in self._by_speaker.get(spk, []) if i != cut.id]

    def source(self, cut: Cut) -> str:
        others = self._others(cut)
        if not others:
            return cut.id
        return self._rng(cut).choice(others)

    def __call__(self, cut: Cut, codes: torch.Tensor) -> torch.Tensor:
        others = self._others(cut)
        if not others:
            return self.fallback(cut, codes)
        rng = self._rng(cut)
        other = self._cuts[rng.choice(others)]
        other_codes = load_codes(other)  # (T', Q)
        t = other_codes.shape[0]
        p = min(round(self.duration * frame_rate_of(other)), t)
        start = rng.randint(0, t - p)
        return other_codes[start : start + p]  # (P, Q)
