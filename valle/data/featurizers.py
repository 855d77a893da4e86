"""Optional per-item fields a variant asks for, and the data request that names them.

Shape legend: S text tokens, T code frames, M mel frames, F mel bins.

The core batch (text, language, codes, ids; :mod:`valle.data.batch`) is the same for every
model. What one variant needs beyond it (language per token for code-switched text, phoneme
durations, pitch buckets, mel frames, ...) comes from small *featurizers*: an object with a
``name`` (the batch key), a ``pad_value`` and ``__call__(cut) -> Tensor`` giving one item's
field, a sequence ``(L, ...)``. The dataset adds each featurizer's output to the item under its
name; collate pads it with ``pad_value`` and adds its lengths under
:func:`valle.data.batch.lens_key`. A featurizer may also give
``example(num_text, num_frames, generator) -> Tensor``, a made-up field of the right shape,
so that ``valle.testing.dummy_batch`` can fake it for tests without cuts.

A variant declares its data through its config's ``data_request(stages)`` method, read with
:func:`valle.registry.data_request`::

    def data_request(self, stages):
        return DataRequest(featurizers=(LanguagePerToken(),))

``other_utterance_prompt`` asks the loader for a second utterance of the speaker per item
(``prompt_codes``); it costs a second codes read per item, so only a model that reads it asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from lhotse.cut import Cut

from valle.data import batch as B

__all__ = [
    "Featurizer",
    "DataRequest",
    "LanguagePerToken",
    "CustomArray",
    "MelFrames",
    "FrameRate",
    "FRAME_RATE",
]


@runtime_checkable
class Featurizer(Protocol):
    """One optional per-item field: ``name`` (batch key), ``pad_value``, ``(cut) -> (L, ...)``."""

    name: str
    pad_value: float

    def __call__(self, cut: Cut) -> torch.Tensor: ...


@dataclass(frozen=True)
class DataRequest:
    """What a model reads from the data beyond the core batch.

    Attributes:
        featurizers: extra per-item fields, each under its ``name`` in the batch.
        other_utterance_prompt: items need ``prompt_codes`` from another utterance of the
            same speaker (the loader reads one only then).
    """

    featurizers: tuple[Featurizer, ...] = ()
    other_utterance_prompt: bool = False

    def __post_init__(self) -> None:
        names = [f.name for f in self.featurizers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"two featurizers write the same batch key(s) {dup}")


class LanguagePerToken:
    """Language id per text token (``(S,)`` long): each supervision's language over its phonemes.

    VALL-E X (Sec 3) adds a language embedding to the inputs; with one id per token, a cut
    whose supervisions are in different languages (code-switching) is described exactly.

    Args:
        default_language: language code for supervisions without one.
    """

    name = B.LANGUAGE_TOKENS
    pad_value = B.pad_value(B.LANGUAGE_TOKENS)

    def __init__(self, default_language: str | None = None) -> None:
        self.default_language = default_language

    def __call__(self, cut: Cut) -> torch.Tensor:
        from valle.data.tokenize import PHONEMES_FIELD, supervision_language
        from valle.text import language_id

        ids: list[int] = []
        for sup in cut.supervisions:
            n = len((sup.custom or {}).get(PHONEMES_FIELD) or [])
            ids += [language_id(supervision_language(sup.language, self.default_language))] * n
        return torch.tensor(ids, dtype=torch.long)  # (S,)

    def example(
        self, num_text: int, num_frames: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A made-up field for a dummy item (``valle.testing.dummy_batch``): a random id per
        token (a code-switched item), from ``valle.text.LANGUAGES``."""
        from valle.text import LANGUAGES

        return torch.randint(0, len(LANGUAGES), (num_text,), generator=generator)  # (S,)


class CustomArray:
    """A per-item array stored on the cut (``cut.custom[field]``, a lhotse array or a list).

    For fields an earlier stage computed: durations from a forced aligner, pitch buckets, mel
    frames. ``dtype`` is the tensor type; ``name`` defaults to ``field``.
    """

    def __init__(
        self,
        field: str,
        name: str | None = None,
        dtype: torch.dtype = torch.long,
        pad_value: float | None = None,
    ) -> None:
        self.field = field
        self.name = name or field
        self.dtype = dtype
        self.pad_value = B.pad_value(self.name) if pad_value is None else pad_value

    def __call__(self, cut: Cut) -> torch.Tensor:
        if not cut.has_custom(self.field):
            raise ValueError(
                f"cut {cut.id} has no '{self.field}' field, which the model's data request "
                f"({self.name}) reads; run the stage that computes it"
            )
        value = cut.custom[self.field]
        arr = cut.load_custom(self.field) if hasattr(value, "load") else value
        return torch.as_tensor(np.asarray(arr), dtype=self.dtype)


class Durations(CustomArray):
    """Frames per text token (``(S,)`` long, ``>= 1`` each, summing to the frames), stored on
    the cut by the aligner stage as ``cut.custom["durations"]`` (VALL-E R, RALL-E)."""

    def __init__(self, field: str = B.DURATIONS) -> None:
        super().__init__(field, name=B.DURATIONS)

    def __call__(self, cut: Cut) -> torch.Tensor:
        if not cut.has_custom(self.field):
            raise ValueError(
                f"cut {cut.id} has no phoneme durations ('{self.field}'), which this model "
                "reads: run the aligner stage on the cuts first (python -m valle.bin.align)"
            )
        return super().__call__(cut)

    def example(
        self, num_text: int, num_frames: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A made-up alignment: ``num_frames`` split at random over the tokens, each >= 1
        where there are enough frames (else the last tokens get 0)."""
        d = torch.zeros(num_text, dtype=torch.long)
        ones = min(num_text, num_frames)
        d[:ones] = 1
        rest = num_frames - ones
        if rest and num_text:
            picks = torch.randint(0, num_text, (rest,), generator=generator)
            d += torch.bincount(picks, minlength=num_text)
        return d  # (S,)


class MelFrames:
    """Log-mel frames of the cut's audio (``(M, F)`` float), for models that read mel.

    The audio is loaded and resampled to ``config.sample_rate`` (``valle.data.audio``); frames
    are padded with the log floor (the value of silence). A large corpus computes them once
    in a stage and reads them back with :class:`CustomArray` instead.
    """

    def __init__(self, config: Any | None = None, name: str = B.MEL) -> None:
        from valle.codec.mel import LogMel, MelConfig

        self.mel = LogMel(config or MelConfig())
        self.name = name
        self.pad_value = self.mel.log_floor_value

    def __call__(self, cut: Cut) -> torch.Tensor:
        from valle.data.audio import load_cut_audio

        wave = load_cut_audio(cut, self.mel.sample_rate)  # (N,)
        with torch.no_grad():
            return self.mel(wave)[0]  # (M, F)

    def example(
        self, num_text: int, num_frames: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A made-up field for a dummy item: ``num_frames`` frames of silence."""
        return torch.full((num_frames, self.mel.n_mels), self.pad_value)  # (M, F)


FRAME_RATE = B.FRAME_RATE  # batch key: (B, 1) float, each item's code frames per second


class FrameRate:
    """Featurizer: the item's code frame rate (frames per second) as a ``(1,)`` float tensor.

    Batch key ``frame_rate`` (B, 1), padded with 0 (never padded in practice: every item has
    one value); ``frame_rate_lens`` is all ones. The rate is the codec's, read from the cut's
    codes (``valle.data.prompt.frame_rate_of``). ``example_rate`` is what
    ``valle.testing.dummy_batch`` fakes (EnCodec's 75 Hz by default).
    """

    name = FRAME_RATE
    pad_value = B.pad_value(FRAME_RATE)

    def __init__(self, example_rate: float = 75.0) -> None:
        if not example_rate > 0:
            raise ValueError(f"example_rate must be > 0 frames/s, got {example_rate}")
        self.example_rate = float(example_rate)

    def __call__(self, cut: Cut) -> torch.Tensor:
        from valle.data.prompt import frame_rate_of

        return torch.tensor([frame_rate_of(cut)], dtype=torch.float32)  # (1,)

    def example(
        self, num_text: int, num_frames: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A made-up field for a dummy item: ``example_rate``."""
        return torch.tensor([self.example_rate], dtype=torch.float32)  # (1,)
