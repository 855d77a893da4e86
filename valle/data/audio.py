"""Audio loading: any file, sample rate or channel count -> mono float32 at a codec's rate.

Shape legend: N samples, C channels.

Reading uses soundfile (files) or lhotse's ``Cut.load_audio`` (cuts, any lhotse audio source);
resampling uses soxr; channels are averaged. Every failure is an :class:`AudioLoadError` that
names the file, so a bad corpus file is found without a debugger.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from lhotse.cut import Cut

logger = logging.getLogger(__name__)

__all__ = [
    "AudioLoadError",
    "AudioProblem",
    "BadAudioError",
    "check_audio_file",
    "check_audio_files",
    "load_audio",
    "load_cut_audio",
    "to_mono_at_rate",
]


class AudioLoadError(RuntimeError):
    """A file (or cut's audio source) could not be read or converted."""


class BadAudioError(ValueError):
    """Corpus audio files that are corrupt, empty or truncated (the message lists them and
    says what to do)."""


def to_mono_at_rate(samples: np.ndarray, source_rate: int, target_rate: int) -> torch.Tensor:
    """Average channels and resample.

    Args:
        samples: float array ``(N,)`` or ``(C, N)`` (lhotse's layout; transpose soundfile's
            ``(N, C)`` first).
        source_rate: sample rate of ``samples`` (Hz).
        target_rate: wanted sample rate (Hz).
    Returns:
        float32 tensor ``(N',)`` with ``N' = round(N * target_rate / source_rate)``.
    """
    if source_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {source_rate} -> {target_rate}")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)  # (C, N) -> (N,)
    elif x.ndim != 1:
        raise ValueError(f"expected audio of shape (N,) or (C, N), got {x.shape}")
    if source_rate != target_rate and x.size > 0:
        x = soxr.resample(x, source_rate, target_rate, quality="HQ")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def load_audio(
    path: str | Path,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """Read an audio file as mono float32 ``(N,)`` at ``sample_rate``.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, ...).
        sample_rate: target rate in Hz (use ``codec.sample_rate``).
        offset: seconds to skip at the start.
        duration: seconds to read (``None``: to the end).
    Raises:
        AudioLoadError: the file is missing, unreadable or corrupt (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"audio file not found: {path} (check the manifest's paths)")
    try:
        info = sf.info(str(path))
        start = int(round(offset * info.samplerate))
        frames = -1 if duration is None else int(round(duration * info.samplerate))
        data, rate = sf.read(
            str(path), start=start, frames=frames, dtype="float32", always_2d=True
        )  # (N, C)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, ValueError
        raise AudioLoadError(
            f"cannot read audio file {path}: {e} (is it corrupt or truncated? re-create or "
            "remove it from the manifest)"
        ) from e
    if data.shape[0] == 0:
        raise AudioLoadError(f"audio file {path} has no samples in the requested range")
    return to_mono_at_rate(data.T, rate, sample_rate)  # (C, N) -> (N,)


def _cut_sources(cut: Cut) -> str:
    """The file names behind a cut, for error messages."""
    try:
        rec = cut.recording
        return ", ".join(str(s.source) for s in rec.sources)
    except Exception:  # cuts without a single recording (mixed cuts)
        return f"cut {cut.id}"


def load_cut_audio(cut: Cut, sample_rate: int) -> torch.Tensor:
    """Load a lhotse cut's audio as mono float32 ``(N,)`` at ``sample_rate``.

    Raises:
        AudioLoadError: the source cannot be read; the message names the file(s) and the cut.
    """
    try:
        samples = cut.load_audio()  # (C, N) at cut.sampling_rate
    except Exception as e:
        raise AudioLoadError(
            f"cannot load audio of cut {cut.id} from {_cut_sources(cut)}: {e} "
            "(is the file missing, corrupt or truncated? fix it or drop the cut)"
        ) from e
    if samples.shape[-1] == 0:
        raise AudioLoadError(f"cut {cut.id} ({_cut_sources(cut)}) has no audio samples")
    return to_mono_at_rate(samples, cut.sampling_rate, sample_rate)


# ----------------------------------------------------------------------------- file checks


def wav_declared_frames(path: str | Path) -> int | None:
    """Sample frames a RIFF/WAVE file's header declares (``data`` chunk size / block align).

    ``None`` when the file is not a plain RIFF wav or the header leaves the size open
    (0 or 0xFFFFFFFF, as streaming writers do). libsndfile clamps its frame count to what the
    file holds, so this is the only way to see that samples are missing.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(size)
                if len(fmt) < 14:
                    return None
                block_align = struct.unpack("<H", fmt[12:14])[0]
                f.seek(size % 2, 1)
            elif cid == b"data":
                if not block_align or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            else:
                f.seek(size + size % 2, 1)


@dataclass(frozen=True)
class AudioProblem:
    """What is wrong with one audio file.

    ``kind`` is ``"missing"``, ``"unreadable"`` (libsndfile cannot open it: corrupt or not
    audio), ``"empty"`` (no samples) or ``"truncated"`` (a wav whose data stops before the end
    its header declares; the file still opens).
    """

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


def check_audio_file(path: str | Path) -> AudioProblem | None:
    """What is wrong with an audio file, or ``None`` when it is fine.

    A truncated copy or download keeps its header, and libsndfile (hence lhotse) then reads
    the samples that are there without a word; comparing the header's declared size with
    the data present finds it.
    """
    path = Path(path)
    if not path.is_file():
        return AudioProblem("missing", "no such file")
    try:
        info = sf.info(str(path))
    except Exception as e:  # LibsndfileError, RuntimeError
        return AudioProblem("unreadable", str(e))
    if info.frames <= 0:
        return AudioProblem("empty", "the file holds no samples")
    try:
        declared = wav_declared_frames(path)
    except OSError as e:
        return AudioProblem("unreadable", str(e))
    if declared is not None and info.frames < declared:
        rate = info.samplerate
        return AudioProblem(
            "truncated",
            f"its header declares {declared} samples ({declared / rate:.2f} s), the file "
            f"holds {info.frames} ({info.frames / rate:.2f} s)",
        )
    return None


def check_audio_files(
    paths: Iterable[str | Path], num_jobs: int = 1, progress: bool = True
) -> dict[Path, AudioProblem]:
    """``{path: problem}`` for every file of ``paths`` that :func:`check_audio_file` rejects.

    ``num_jobs`` threads read the headers (the work is file I/O); a progress bar counts files.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    files = [Path(p) for p in paths]
    bar = tqdm(files, desc="checking audio files", unit="file", disable=not progress)
    if num_jobs > 1:
        with ThreadPoolExecutor(max_workers=num_jobs) as pool:
            problems = list(pool.map(check_audio_file, bar))
    else:
        problems = [check_audio_file(p) for p in bar]
    return {p: pr for p, pr in zip(files, problems, strict=True) if pr is not None}
