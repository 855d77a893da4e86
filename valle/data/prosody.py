"""Phoneme-level prosody tokens (RALL-E Sec 3.1): pitch buckets and clipped durations.

Shape legend: N samples, T code frames, S phoneme tokens.

RALL-E extracts F0 with WORLD, averages it over each phoneme and quantises it; durations come
from a forced alignment. Here:

- **F0**: Praat's autocorrelation pitch tracker (the ``praat-parselmouth`` package), read at
  the middle of every code frame (nearest Praat frame; outside Praat's frames: unvoiced).
  The paper uses WORLD; its wrapper ``pyworld`` (0.3.5, the newest on the package index
  here) fails to import with setuptools >= 81 (it imports ``pkg_resources``), so this
  toolkit uses Praat's tracker, a comparable offline one. Frames Praat finds unvoiced have
  F0 0; the search range is the quantiser's (50-600 Hz).
- **Per phoneme**: the phoneme's span is its frames under ``cut.custom["durations"]`` (the
  aligner stage); its pitch is the mean F0 in Hz over the span's *voiced* frames; a phoneme
  without a voiced frame is unvoiced.
- **Buckets** (:class:`PitchQuantizer`): a fixed range, 50-600 Hz (not data statistics: the
  tokens then mean the same on every corpus and for a reference utterance at inference),
  split linearly in log F0 into M_p = 256 buckets. Token 0 is *unvoiced*; a voiced phoneme
  gets ``1 + floor(M_p * (log f - log 50) / (log 600 - log 50))``, clipped to 1..M_p.
- **Durations**: frames per phoneme clipped at M_d = 32 (tokens 0..M_d).

The stage (:func:`annotate_cuts`, CLI ``python -m valle.bin.prosody``) stores
``custom["pitch_tokens"]`` and ``custom["duration_tokens"]`` on every cut; the featurizers
:class:`PitchTokens` and :class:`DurationTokens` serve them as batch fields of the same names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut
from tqdm import tqdm

from valle.data import batch as B

__all__ = [
    "DURATION_TOKENS",
    "DurationTokens",
    "PITCH_TOKENS",
    "PitchQuantizer",
    "PitchTokens",
    "ProsodyExtractor",
    "annotate_cuts",
    "duration_tokens",
    "frame_f0",
    "phoneme_f0",
]

logger = logging.getLogger(__name__)

PITCH_TOKENS = "pitch_tokens"
DURATION_TOKENS = "duration_tokens"
UNVOICED = 0


@dataclass(frozen=True)
class PitchQuantizer:
    """Linear buckets in log F0 over ``[f_min, f_max]`` Hz; token 0 is unvoiced.

    Attributes:
        num_buckets: M_p, voiced buckets (tokens 1..M_p).
        f_min: lowest F0 (Hz); lower F0 goes to bucket 1.
        f_max: highest F0 (Hz); higher F0 goes to bucket M_p.
    """

    num_buckets: int = 256
    f_min: float = 50.0
    f_max: float = 600.0

    def __post_init__(self) -> None:
        if self.num_buckets < 1 or not 0 < self.f_min < self.f_max:
            raise ValueError(f"bad pitch quantiser {self}")

    @property
    def log_ratio(self) -> float:
        """``log(f_max / f_min)``: the width of the range in log F0."""
        return math.log(self.f_max / self.f_min)

    def __call__(self, f0: np.ndarray) -> np.ndarray:
        """F0 in Hz (any shape; <= 0 or NaN = unvoiced) -> tokens (same shape) in 0..M_p."""
        f0 = np.asarray(f0, dtype=np.float64)
        voiced = np.isfinite(f0) & (f0 > 0)
        safe = np.where(voiced, f0, self.f_min)
        pos = (np.log(safe) - math.log(self.f_min)) / self.log_ratio  # 0..1 inside the range
        bucket = 1 + np.floor(pos * self.num_buckets).astype(np.int64)
        return np.where(voiced, np.clip(bucket, 1, self.num_buckets), UNVOICED)

    def center(self, tokens: np.ndarray) -> np.ndarray:
        """The F0 (Hz) at the middle of each token's bucket in log F0; 0 for unvoiced."""
        t = np.asarray(tokens)
        pos = (t - 1 + 0.5) / self.num_buckets
        hz = self.f_min * np.exp(pos * self.log_ratio)
        return np.where(t > 0, hz, 0.0)


def duration_tokens(durations: Sequence[int] | np.ndarray, max_duration: int = 32) -> np.ndarray:
    """Frames per phoneme (S,) -> duration tokens (S,) clipped at ``max_duration`` (M_d)."""
    return np.clip(np.asarray(durations, dtype=np.int64), 0, max_duration)


def frame_f0(wave: np.ndarray, sample_rate: int, hop: int, num_frames: int,
             f_min: float = 50.0, f_max: float = 600.0) -> np.ndarray:  # fmt: skip
    """F0 (Hz, 0 unvoiced) at the middle of each of ``num_frames`` code frames (T,).

    Code frame t covers samples ``[t * hop, (t + 1) * hop)``; Praat's pitch (autocorrelation,
    one frame per code frame) is read at ``(t + 0.5) * hop / sample_rate`` seconds from its
    nearest frame; code frames outside Praat's frames (the first and last half window) are
    unvoiced.
    """
    try:
        import parselmouth
    except ImportError as e:  # pragma: no cover - the dependency is declared
        raise ImportError(
            "pitch extraction needs the praat-parselmouth package: pip install praat-parselmouth"
        ) from e
    x = np.asarray(wave, dtype=np.float64)
    out = np.zeros(num_frames)
    step = hop / sample_rate  # seconds per code frame
    if x.size < 4 * sample_rate / f_min:  # shorter than Praat's analysis window
        return out
    sound = parselmouth.Sound(x, sampling_frequency=sample_rate)
    pitch = sound.to_pitch_ac(time_step=step, pitch_floor=f_min, pitch_ceiling=f_max)
    f0 = np.nan_to_num(pitch.selected_array["frequency"])  # (frames,) 0 unvoiced
    if f0.size == 0:
        return out
    x0 = float(pitch.xs()[0])
    centers = (np.arange(num_frames) + 0.5) * step
    idx = np.round((centers - x0) / step).astype(np.int64)
    inside = (idx >= 0) & (idx < f0.size)
    out[inside] = f0[idx[inside]]
    return out


def phoneme_f0(f0: np.ndarray, durations: Sequence[int] | np.ndarray) -> np.ndarray:
    """Mean F0 (Hz) over each phoneme's voiced frames (S,); 0 for a phoneme with none.

    ``f0`` (T,) per code frame (<= 0 unvoiced); ``durations`` (S,) frames per phoneme,
    consecutive spans from frame 0.
    """
    d = np.asarray(durations, dtype=np.int64)
    ends = np.cumsum(d)
    starts = ends - d
    f0 = np.asarray(f0, dtype=np.float64)
    out = np.zeros(d.shape[0])
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        span = f0[a:b]
        voiced = span[span > 0]
        if voiced.size:
            out[i] = float(voiced.mean())
    return out


class ProsodyExtractor:
    """Cuts -> (pitch tokens, duration tokens) per phoneme token (RALL-E Sec 3.1).

    Reads each cut's audio, its codes (the frame rate and T) and ``custom["durations"]``.
    """

    def __init__(self, quantizer: PitchQuantizer | None = None, max_duration: int = 32) -> None:
        self.quantizer = quantizer or PitchQuantizer()
        self.max_duration = max_duration

    @property
    def fingerprint(self) -> str:
        q = self.quantizer
        key = f"praat-ac:{q.num_buckets}:{q.f_min}:{q.f_max}:{self.max_duration}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def __call__(self, cut: Cut) -> tuple[list[int], list[int]]:
        from valle.align.durations import cut_durations
        from valle.align.features import analysis_rate, num_code_frames
        from valle.data.audio import load_cut_audio
        from valle.data.prompt import frame_rate_of

        durations = cut_durations(cut)
        T = num_code_frames(cut)
        if sum(durations) != T:
            raise ValueError(
                f"cut {cut.id}: durations sum to {sum(durations)} frames, its codes have {T}; "
                "re-run the aligner stage"
            )
        rate, hop = analysis_rate(frame_rate_of(cut))
        wave = load_cut_audio(cut, rate).numpy()  # (N,)
        q = self.quantizer
        f0 = frame_f0(wave, rate, hop, T, q.f_min, q.f_max)  # (T,)
        pitch = q(phoneme_f0(f0, durations))  # (S,)
        return [int(p) for p in pitch], [
            int(d) for d in duration_tokens(durations, self.max_duration)
        ]


def _inputs_digest(cuts: Sequence[Cut]) -> str:
    """SHA-1 over what the prosody tokens of ``cuts`` depend on: each cut as its manifest
    holds it (durations, codes, recording, span; the stage's own output fields left out) and
    the size and mtime of its audio files, so a re-aligned cut or a replaced wav at the same
    path changes the digest of its chunk."""
    from valle.data.manifests import file_stamp

    h = hashlib.sha1()
    for cut in cuts:
        d = cut.to_dict()
        custom = {k: v for k, v in (d.get("custom") or {}).items()}
        custom.pop(PITCH_TOKENS, None)
        custom.pop(DURATION_TOKENS, None)
        d["custom"] = custom
        stamps: list[list[int] | None] = []
        for src in cut.recording.sources if cut.has_recording else []:
            if src.type == "file":
                try:
                    stamps.append(file_stamp(src.source))
                except OSError:
                    stamps.append(None)
        h.update(json.dumps([d, stamps], sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def annotate_cuts(
    cuts: Iterable[Cut],
    out_path: str | Path,
    extractor: ProsodyExtractor | None = None,
    chunk_size: int = 200,
    progress: bool = True,
) -> CutSet:
    """Add ``custom["pitch_tokens"]`` and ``custom["duration_tokens"]`` to every cut and write
    the manifest ``out_path`` atomically.

    Batched and resumable: cuts go ``chunk_size`` at a time; each finished chunk is written
    atomically under ``<out_path stem>.prosody-chunks/`` with the extractor's settings, its cut
    ids and a digest of its inputs (:func:`_inputs_digest`: the cuts' manifest entries, among
    them the durations, and their audio files' size and mtime). A rerun reuses a chunk only
    when all three match; a chunk with changed durations or audio is recomputed.
    """
    from valle.data.manifests import save_cuts_atomic, write_json_atomic

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    extractor = extractor or ProsodyExtractor()
    cut_list = list(cuts)
    if not cut_list:
        raise ValueError("no cuts to annotate")
    out_path = Path(out_path)
    chunk_dir = out_path.parent / f"{out_path.name.split('.')[0]}.prosody-chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = extractor.fingerprint
    done: list[Cut] = []
    bar = tqdm(total=len(cut_list), desc="prosody", unit="cut", disable=not progress)
    for k in range(0, len(cut_list), chunk_size):
        chunk = cut_list[k : k + chunk_size]
        path = chunk_dir / f"cuts.{k // chunk_size:05d}.jsonl.gz"
        meta = chunk_dir / f"cuts.{k // chunk_size:05d}.json"
        ids = [c.id for c in chunk]
        inputs = _inputs_digest(chunk)
        if path.is_file() and meta.is_file():
            info = json.loads(meta.read_text())
            same = (info.get("extractor"), info.get("cut_ids"), info.get("inputs"))
            if same == (fingerprint, ids, inputs):
                stored = {c.id: c for c in CutSet.from_file(path)}
                done.extend(
                    c.with_custom(PITCH_TOKENS, stored[c.id].custom[PITCH_TOKENS]).with_custom(
                        DURATION_TOKENS, stored[c.id].custom[DURATION_TOKENS]
                    )
                    for c in chunk
                )
                bar.update(len(chunk))
                continue
        annotated = []
        for c in chunk:
            pitch, dur = extractor(c)
            annotated.append(c.with_custom(PITCH_TOKENS, pitch).with_custom(DURATION_TOKENS, dur))
            bar.update(1)
        save_cuts_atomic(CutSet.from_cuts(annotated), path)
        # the meta file marks the chunk finished
        write_json_atomic({"extractor": fingerprint, "cut_ids": ids, "inputs": inputs}, meta)
        done.extend(annotated)
    bar.close()
    result = CutSet.from_cuts(done)
    save_cuts_atomic(result, out_path)
    return result


class _StoredTokens:
    """A per-phoneme token list stored on the cut (``(S,)`` long)."""

    name: str
    stage_hint = "run the prosody stage on the cuts first (python -m valle.bin.prosody)"

    def __init__(self) -> None:
        self.pad_value = B.pad_value(self.name)

    def __call__(self, cut: Cut) -> torch.Tensor:
        if not cut.has_custom(self.name):
            raise ValueError(
                f"cut {cut.id} has no '{self.name}', which this model reads: {self.stage_hint}"
            )
        return torch.as_tensor(np.asarray(cut.custom[self.name]), dtype=torch.long)  # (S,)


class PitchTokens(_StoredTokens):
    """Pitch token per phoneme (``(S,)`` long, 0 unvoiced, 1..M_p) from the prosody stage."""

    name = PITCH_TOKENS

    def __init__(self, num_buckets: int = 256) -> None:
        super().__init__()
        self.num_buckets = num_buckets

    def example(
        self, num_text: int, num_frames: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Made-up tokens for a dummy item: random buckets, some unvoiced."""
        return torch.randint(0, self.num_buckets + 1, (num_text,), generator=generator)


class DurationTokens(_StoredTokens):
    """Duration token per phoneme (``(S,)`` long, frames clipped at M_d) from the prosody stage."""

    name = DURATION_TOKENS

    def __init__(self, max_duration: int = 32) -> None:
        super().__init__()
        self.max_duration = max_duration

    def example(
        self, num_text: int, num_frames: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Made-up tokens for a dummy item: random durations in 1..M_d."""
        return torch.randint(1, self.max_duration + 1, (num_text,), generator=generator)
