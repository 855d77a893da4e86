"""Prosody from a reference recording: frames (and pitch tokens) per target phoneme.

Shape legend: N samples, T codec frames, L target phonemes, F mel bins, S aligner classes.

Prosody control by a given alignment (VALL-E R Sec 3.4; RALL-E's "durations or pitch copied
from a reference", Sec 3.2): the user records (or picks) an utterance that says the *target*
text, and the model speaks the text in the prompt's voice with the reference's timing (and,
for RALL-E, its pitch contour).

The reference is read like a prompt (any file, or samples at a given rate, resampled to the
codec's rate and mixed to mono) but never trimmed: all of it is the text. Then:

1. **Frames**: the codec encodes it; ``T`` is its number of code frames, the unit of the
   models' durations.
2. **Durations**: the trained aligner (:class:`valle.align.Aligner`, ``aligner.pt`` of the
   aligner stage, ``prepare.sh --align true``) scores its features at the codec frame rate
   and its monotonic Viterbi gives frames per target phoneme (each ``>= 1``, summing to
   ``T``), exactly as the aligner stage does for a training cut (the same
   :meth:`~valle.align.Aligner.align_one`, on an in-memory cut carrying the phonemes).
3. **Pitch** (optional, a model with pitch tokens): F0 per code frame
   (:func:`valle.data.prosody.frame_f0`), averaged over each phoneme's voiced frames
   (:func:`~valle.data.prosody.phoneme_f0`), bucketed by the model's
   :class:`~valle.data.prosody.PitchQuantizer`, as the prosody stage does for training.

The phonemes must be the synthesizer's own tokens of the target text (one duration per
target token, the ones after the prompt transcript and its word boundary), so the aligner's
symbol table must be the model's (:func:`check_aligner_symbols`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from valle.align import Aligner
from valle.align.features import analysis_rate
from valle.codec.base import Codec
from valle.data.audio import to_mono_at_rate
from valle.data.prosody import PitchQuantizer, frame_f0, phoneme_f0
from valle.data.tokenize import PHONEMES_FIELD
from valle.inference.prompt import load_recording
from valle.text import SymbolTable

__all__ = [
    "AlignerMismatchError",
    "ReferenceAudio",
    "ReferenceProsody",
    "ReferenceTooShortError",
    "check_aligner_symbols",
    "load_aligner_for",
    "load_reference",
    "reference_prosody",
]

ReferenceAudio = str | os.PathLike[str] | np.ndarray | Tensor  # a file, or samples (N,) / (C, N)


class AlignerMismatchError(ValueError):
    """The aligner was trained on other tokens or another codec frame rate than the model."""


class ReferenceTooShortError(ValueError):
    """A reference with fewer codec frames than the phonemes it must cover."""


@dataclass(frozen=True)
class ReferenceProsody:
    """The prosody of a reference recording of the target text.

    Attributes:
        phonemes: the L target phonemes it was aligned to.
        durations: (L,) long, codec frames per phoneme, each >= 1, summing to ``frames``.
        frames: T, the reference's codec frames.
        pitch: (L,) long pitch tokens (0 unvoiced, 1..M_p), or None when not asked for.
    """

    phonemes: tuple[str, ...]
    durations: Tensor
    frames: int
    pitch: Tensor | None = None


def load_aligner_for(
    aligner: Aligner | str | os.PathLike[str], symbols: SymbolTable, codec: Codec
) -> Aligner:
    """The aligner (loaded from ``aligner.pt`` when a path), checked against the model's symbol
    table and the codec's frame rate."""
    if not isinstance(aligner, Aligner):
        path = Path(aligner)
        if not path.is_file():
            raise FileNotFoundError(
                f"aligner checkpoint {path} not found; train it with the recipe's aligner stage "
                "(prepare.sh --align true writes data/align/aligner.pt)"
            )
        aligner = Aligner(path)
    check_aligner_symbols(aligner, symbols)
    rate = float(codec.frame_rate)
    if abs(aligner.feature_config.frame_rate - rate) > 1e-6:
        raise AlignerMismatchError(
            f"the aligner {aligner.path} counts frames at {aligner.feature_config.frame_rate:g} "
            f"Hz but the model's codec gives {rate:g} Hz frames; use the aligner trained on "
            "this model's data (its codec's codes)"
        )
    return aligner


def check_aligner_symbols(aligner: Aligner, symbols: SymbolTable) -> None:
    """Raise :class:`AlignerMismatchError` unless the aligner's symbols are the model's table
    (same tokens, same order): its durations are one per model token."""
    mine, theirs = list(symbols.symbols), list(aligner.symbols)
    if mine == theirs:
        return
    pairs = enumerate(zip(mine, theirs, strict=False))
    diff = next((i for i, (a, b) in pairs if a != b), min(len(mine), len(theirs)))
    a = mine[diff] if diff < len(mine) else "(none)"
    b = theirs[diff] if diff < len(theirs) else "(none)"
    raise AlignerMismatchError(
        f"the aligner {aligner.path} was trained with {len(theirs)} symbols, the model has "
        f"{len(mine)}; they first differ at id {diff} (model {a!r}, aligner {b!r}); use the "
        "aligner trained on the model's data (prepare.sh --align true with the same tokens.txt)"
    )


def load_reference(
    audio: ReferenceAudio, sample_rate: int, source_rate: int | None = None
) -> Tensor:
    """A reference as mono float32 (N,) at ``sample_rate`` (the codec's), read as a prompt is
    (:func:`~valle.inference.prompt.load_recording`) but never trimmed or length-checked."""
    return load_recording(
        audio, sample_rate, source_rate, what="reference", hint="a recording that says the text"
    )


def _cut(phonemes: Sequence[str], seconds: float, name: str):  # an in-memory lhotse cut
    from lhotse import MonoCut, SupervisionSegment

    sup = SupervisionSegment(
        id=name, recording_id=name, start=0.0, duration=seconds,
        custom={PHONEMES_FIELD: list(phonemes)},
    )  # fmt: skip
    return MonoCut(id=name, start=0.0, duration=seconds, channel=0, supervisions=[sup])


def reference_prosody(
    audio: ReferenceAudio,
    phonemes: Sequence[str],
    codec: Codec,
    aligner: Aligner,
    *,
    source_rate: int | None = None,
    pitch: PitchQuantizer | None = None,
    name: str = "reference",
    frames: int | None = None,
) -> ReferenceProsody:
    """Frames (and pitch tokens with ``pitch``) per phoneme of a recording of ``phonemes``.

    Args:
        audio: the reference: a file, or samples (N,) / (C, N) at ``source_rate`` (default:
            the codec's rate).
        phonemes: the L target phonemes the recording says (the synthesizer's tokens).
        codec: the model's codec (its frames are the durations' unit).
        aligner: a trained aligner whose symbols are the model's (:func:`load_aligner_for`).
        pitch: the model's pitch quantiser; None: no pitch tokens.
        name: what errors call the reference.
        frames: its codec frames when the caller has encoded it already (a prompt); None:
            encoded here to count them.
    Raises:
        ValueError: no phonemes, empty or non-finite audio.
        ReferenceTooShortError: fewer codec frames than phonemes.
        AlignerMismatchError: phonemes the aligner has no class for, another frame rate.
    """
    phonemes = list(phonemes)
    if not phonemes:
        raise ValueError(f"the text of {name} has no phonemes; pass the sentence it says")
    unknown = sorted({p for p in phonemes if p not in aligner.index})
    if unknown:
        raise AlignerMismatchError(
            f"the aligner {aligner.path} has no class for the phonemes {unknown}; use the "
            "aligner trained on the model's data"
        )
    rate = float(codec.frame_rate)
    if abs(aligner.feature_config.frame_rate - rate) > 1e-6:
        raise AlignerMismatchError(
            f"the aligner counts frames at {aligner.feature_config.frame_rate:g} Hz, the codec "
            f"at {rate:g} Hz; use the aligner trained on this codec's codes"
        )
    wave = load_reference(audio, int(codec.sample_rate), source_rate)  # (N,) at the codec's rate
    if frames is None:
        with torch.inference_mode():
            (codes,) = codec.encode([wave])  # (T, Q)
        frames = int(codes.shape[0])
    T = int(frames)
    seconds = wave.numel() / codec.sample_rate
    if T < len(phonemes):
        raise ReferenceTooShortError(
            f"{name} is {seconds:.2f} s ({T} codec frames at {rate:g} Hz) but its text has "
            f"{len(phonemes)} phonemes, each needing >= 1 frame; pass a recording of the whole "
            "text (or the text it says)"
        )
    a_rate, hop = analysis_rate(rate)
    a_wave = to_mono_at_rate(wave.numpy(), int(codec.sample_rate), a_rate)  # (N',)
    feats = aligner.features.from_wave(a_wave, T)  # (T, F)
    cut = _cut(phonemes, seconds, name)
    durations = aligner.align_one(cut, *aligner.frame_scores(feats))  # (L,)
    d = torch.as_tensor(np.asarray(durations), dtype=torch.long)
    if d.shape != (len(phonemes),) or int(d.sum()) != T or int(d.min()) < 1:  # the aligner's rule
        raise RuntimeError(
            f"the aligner gave {d.tolist()} for {len(phonemes)} phonemes over {T} frames"
        )
    tokens = None
    if pitch is not None:
        f0 = frame_f0(a_wave.numpy(), a_rate, hop, T, pitch.f_min, pitch.f_max)  # (T,)
        tokens = torch.as_tensor(pitch(phoneme_f0(f0, d.numpy())), dtype=torch.long)  # (L,)
    return ReferenceProsody(tuple(phonemes), d, T, tokens)
