"""Wave helpers shared by the evaluation backends: mono float32 numpy, resampling, file I/O.

Shape legend: N samples, C channels.

Every backend (ASR, speaker encoder) runs at its own sample rate; callers hand waves at any rate
and the backend calls :func:`resample` itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

Wave = np.ndarray | torch.Tensor


def to_mono_float32(wave: Wave) -> np.ndarray:
    """Return ``wave`` as a 1-D float32 numpy array.

    Accepts ``(N,)``, ``(1, N)`` or ``(C, N)`` (channels averaged) arrays or tensors.
    """
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(wave, dtype=np.float32)
    if arr.ndim == 2:
        # (C, N) -> (N,)
        arr = arr.mean(axis=0) if arr.shape[0] < arr.shape[1] else arr.mean(axis=1)
    if arr.ndim != 1:
        raise ValueError(
            f"expected a mono wave of shape (N,) or (C, N), got shape {tuple(arr.shape)}; "
            "pass one utterance per list item"
        )
    return np.ascontiguousarray(arr)


def resample(wave: Wave, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono wave from ``orig_sr`` to ``target_sr`` (soxr, high quality)."""
    arr = to_mono_float32(wave)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr or arr.size == 0:
        return arr
    import soxr

    return np.asarray(soxr.resample(arr, orig_sr, target_sr, quality="HQ"), dtype=np.float32)


def prepare_waves(waves: Sequence[Wave], sample_rate: int, target_sr: int) -> list[np.ndarray]:
    """Mono float32 waves at ``target_sr``; raises a clear error on an empty batch item."""
    out = []
    for i, w in enumerate(waves):
        arr = resample(w, sample_rate, target_sr)
        if arr.size == 0:
            raise ValueError(f"wave {i} is empty; drop it or synthesize it again before scoring")
        out.append(arr)
    return out


def load_wave(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as a mono float32 wave and its sample rate."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    return np.ascontiguousarray(data.mean(axis=1)), int(sr)


def write_wave(path: str | Path, wave: Wave, sample_rate: int) -> Path:
    """Write a mono wave as 16-bit PCM WAV, atomically."""
    import soundfile as sf

    from valle.eval.files import atomic_path

    with atomic_path(path) as tmp:
        sf.write(str(tmp), to_mono_float32(wave), sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)
