"""Acoustic prompts for zero-shot TTS: loading at the codec's rate and trimming to ~3 s.

Shape legend: N samples, C channels, W analysis frames.

VALL-E (Sec 4.3, 5.1) uses a 3 s enrolled recording as the acoustic prompt. Longer prompts
cost AR steps (every prompt frame is a key of every step) and, cut at an arbitrary point,
leave a transcript that no longer matches the audio. Without a word alignment the cut follows
this rule (:func:`trim_prompt`):

1. A prompt of at most ``max_ratio * seconds`` (default 1.5 x 3 s = 4.5 s) is kept whole.
2. Otherwise the audio is cut at the quietest 20 ms frame (most likely a pause between
   words) within ``seconds +- search`` (default 3 s +- 0.5 s); ties go to the frame nearest
   ``seconds``.
3. The transcript keeps the same fraction of its words (whitespace-separated; for text
   without spaces, such as Chinese or Japanese, characters), rounded, at least one, and a
   warning is logged: the cut is approximate. Disable trimming (``seconds=None``) for
   prompts whose transcript must stay exact.

A prompt shorter than :data:`MIN_SECONDS` or quieter than :data:`SILENT_DBFS` (RMS) gets a
warning when loaded (:func:`check_prompt`): the voice is then mostly guessed.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from valle.data.audio import AudioLoadError, load_audio, to_mono_at_rate

logger = logging.getLogger(__name__)

__all__ = [
    "PromptAudio",
    "PromptTrim",
    "check_prompt",
    "load_prompt",
    "load_recording",
    "trim_prompt",
]

MIN_SECONDS = 1.0  # shorter prompts carry too little of the voice
SILENT_DBFS = -60.0  # RMS level (dB re full scale) below which a prompt counts as silent

PromptAudio = str | os.PathLike[str] | np.ndarray | Tensor  # a file, or samples (N,) / (C, N)


@dataclass(frozen=True)
class PromptTrim:
    """How to shorten a long prompt (see the module docstring); ``seconds=None``: never."""

    seconds: float | None = 3.0  # target prompt length (s)
    max_ratio: float = 1.5  # prompts up to max_ratio * seconds are kept whole
    search: float = 0.5  # look for a pause within seconds +- search (s)
    frame: float = 0.02  # energy analysis frame (s)

    def __post_init__(self) -> None:
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError(
                f"prompt seconds must be > 0 (or None: no trimming), got {self.seconds}"
            )
        if self.max_ratio < 1:
            raise ValueError(f"max_ratio must be >= 1, got {self.max_ratio}")
        if self.search < 0 or self.frame <= 0:
            raise ValueError("search must be >= 0 and frame > 0 seconds")


def load_recording(
    audio: PromptAudio,
    sample_rate: int,
    source_rate: int | None = None,
    *,
    what: str = "prompt",
    hint: str = "a recording of about 3 s",
) -> Tensor:
    """A recording as mono float32 (N,) at ``sample_rate``: a file path (any rate and channel
    count) or samples (N,) / (C, N) at ``source_rate`` (default ``sample_rate``). ``what``
    names it in errors ("prompt", "reference"); ``hint`` says what to pass instead. An empty,
    unreadable or non-finite recording is an error; nothing is trimmed."""
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        if not path.is_file():
            kind = "is a directory" if path.is_dir() else "not found"
            raise FileNotFoundError(f"{what} recording {path} {kind}; pass {hint}")
        try:
            return load_audio(path, sample_rate)
        except AudioLoadError as e:
            cause = e.__cause__ or e
            raise AudioLoadError(
                f"cannot read the {what} recording {path}: {cause} (is it an audio file? "
                "re-export it as wav or flac)"
            ) from e
    if isinstance(audio, Tensor):
        audio = audio.detach().cpu().float().numpy()
    if not isinstance(audio, np.ndarray):
        raise TypeError(
            f"{what} audio must be a file path or an array of samples, got {type(audio).__name__}"
        )
    if audio.ndim == 2 and audio.shape[0] > audio.shape[1]:
        raise ValueError(
            f"{what} samples of shape {audio.shape} look like (N, C); pass (C, N) (transpose "
            "soundfile's output) or a mono (N,) array"
        )
    if source_rate is not None and source_rate <= 0:
        raise ValueError(f"the {what}'s sample rate must be > 0 Hz, got {source_rate}")
    wave = to_mono_at_rate(audio, source_rate or sample_rate, sample_rate)
    if wave.numel() == 0:
        raise ValueError(f"the {what} audio is empty; pass {hint}")
    if not torch.isfinite(wave).all():
        raise ValueError(f"the {what} audio holds NaN or inf samples")
    return wave


def load_prompt(audio: PromptAudio, sample_rate: int, source_rate: int | None = None) -> Tensor:
    """A prompt as mono float32 (N,) at ``sample_rate`` (the codec's), checked by
    :func:`check_prompt` (see :func:`load_recording`)."""
    wave = load_recording(
        audio, sample_rate, source_rate, what="prompt", hint="a wav/flac file of ~3 s of speech"
    )
    name = str(audio) if isinstance(audio, (str, os.PathLike)) else "the prompt"
    check_prompt(wave, sample_rate, name)
    return wave


def check_prompt(wave: Tensor, sample_rate: int, name: str = "the prompt") -> None:
    """Warn about a prompt (N,) that is shorter than :data:`MIN_SECONDS` or silent (RMS below
    :data:`SILENT_DBFS`): synthesis still runs, but the voice will not be the speaker's."""
    seconds = wave.shape[-1] / sample_rate
    if seconds < MIN_SECONDS:
        logger.warning(
            "%s is only %.2f s long; a ~3 s prompt gives a much closer voice", name, seconds
        )
    rms = float(wave.double().pow(2).mean().sqrt()) if wave.numel() else 0.0
    dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
    if dbfs < SILENT_DBFS:
        logger.warning(
            "%s is silent (RMS %.1f dBFS, below %.0f dBFS); pass a recording of the speaker",
            name,
            dbfs,
            SILENT_DBFS,
        )


def _units(text: str) -> tuple[list[str], str]:
    """Words (joined by spaces) or, for text without spaces, characters (joined by nothing)."""
    words = text.split()
    if len(words) > 1:
        return words, " "
    return [c for c in text.strip()], ""


def trim_prompt(
    wave: Tensor, text: str, sample_rate: int, trim: PromptTrim | None = None
) -> tuple[Tensor, str]:
    """Shorten a long prompt wave (N,) and its transcript by the rule of the module docstring.

    Returns the (possibly) shortened wave and transcript. ``trim`` None: ``PromptTrim()``.
    """
    trim = PromptTrim() if trim is None else trim
    if trim.seconds is None:
        return wave, text
    n = wave.shape[-1]
    duration = n / sample_rate
    if duration <= trim.max_ratio * trim.seconds:
        return wave, text
    hop = max(1, int(round(trim.frame * sample_rate)))
    W = n // hop
    energy = wave[: W * hop].reshape(W, hop).double().pow(2).mean(-1)  # (W,)
    centre = (torch.arange(W, dtype=torch.float64) + 0.5) * hop / sample_rate  # (W,) seconds
    lo, hi = trim.seconds - trim.search, trim.seconds + trim.search
    window = ((centre >= lo) & (centre <= hi)).nonzero().flatten()
    if window.numel() == 0:  # frame longer than the window: cut at the target itself
        cut = int(round(trim.seconds * sample_rate))
    else:
        e = energy[window]
        quiet = window[e <= e.min() * (1 + 1e-9) + 1e-20]  # (ties)
        best = quiet[(centre[quiet] - trim.seconds).abs().argmin()]
        cut = int(round(float(centre[best]) * sample_rate))
    units, sep = _units(text)
    keep = min(len(units), max(1, int(round(len(units) * cut / n))))
    new_text = sep.join(units[:keep])
    logger.warning(
        "prompt of %.2f s trimmed to %.2f s at a pause; transcript cut to %d of %d %s "
        "proportionally (%r) -- pass a ~%.0f s prompt or disable trimming if it is wrong",
        duration,
        cut / sample_rate,
        keep,
        len(units),
        "words" if sep else "characters",
        new_text,
        trim.seconds,
    )
    return wave[:cut], new_text
