"""Writing synthesized waves: atomically (temp file in the same directory, then os.replace)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from valle.io.atomic import atomic_path

logger = logging.getLogger(__name__)

__all__ = ["OutputPathError", "check_writable", "write_wav"]


class OutputPathError(ValueError):
    """An output path a wave cannot be written to (found before synthesizing)."""


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Make sure a wave can be written to ``path`` before spending time on synthesis: its
    directory is created if missing and a probe file is written there and removed.

    Raises:
        OutputPathError: ``path`` is a directory, or its directory cannot be created or
            written to (the message names it and why).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(
            f"output {path} is a directory; remove it or write the wave under another name"
        )
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as e:
        raise OutputPathError(
            f"cannot write {path}: {e.strerror or e} ({parent}); pass a writable output path"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


def write_wav(path: str | os.PathLike[str], wave: np.ndarray, sample_rate: int) -> Path:
    """Write a mono float wave (N,) as 16-bit PCM WAV; samples beyond [-1, 1] are clipped."""
    path = Path(path)
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    if not np.isfinite(wave).all():
        raise ValueError(f"refusing to write {path}: the wave holds NaN or inf samples")
    clipped = int(np.count_nonzero(np.abs(wave) > 1.0))
    if clipped:
        logger.warning("%s: %d samples beyond [-1, 1] clipped", path, clipped)
    with atomic_path(path) as tmp:  # valle.io.atomic: umask-respecting mode, fsync
        sf.write(tmp, np.clip(wave, -1.0, 1.0), int(sample_rate), format="WAV", subtype="PCM_16")
    return path
