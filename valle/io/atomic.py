"""The one atomic file writer: a crash never leaves a half-written file under the final name.

Every writer creates a temporary file ``.<name>.<8 hex>.tmp`` beside the destination (with
``O_EXCL`` and mode ``0o666``, so the process umask applies exactly as for a plain ``open``; a
``mkstemp`` file would stay ``0600``), writes and fsyncs it, moves it into place with
``os.replace`` and fsyncs the directory. On any error the temp file is removed.

All writers take the destination path first::

    atomic_write_text(path, text)
    atomic_write_bytes(path, data)
    atomic_torch_save(path, obj)
    with atomic_path(path) as tmp:       # for writers that open a file by name
        fig.savefig(tmp)
    with atomic_path(path, keep_suffix=True) as tmp:   # ...and pick the format from the suffix
        cuts.to_file(tmp)

A process killed with ``kill -9`` can leave its temp file behind; :func:`remove_stale_temps`
removes those of a directory (training does so for its checkpoint directory on start).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

__all__ = [
    "TEMP_NAME_RE",
    "atomic_open",
    "atomic_path",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_temp_name",
    "remove_stale_temps",
]

# ".<target name>.<token>.tmp[<target suffixes>]"; the token of older writers was mkstemp's 8
# characters [a-z0-9_], of this module 8 hex digits.
TEMP_NAME_RE = re.compile(
    r"^\.(?P<target>.+)\.(?P<token>[A-Za-z0-9_]{6,12})\.tmp(?:\.[A-Za-z0-9]+)*$"
)


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is the name of an atomic writer's temp file."""
    return TEMP_NAME_RE.match(name) is not None


def _as_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            "atomic writers take the destination path first, then the content; got a "
            f"{type(path).__name__} as the path"
        )
    return Path(path)


def _create_temp(path: Path, keep_suffix: bool) -> Path:
    suffix = "".join(path.suffixes) if keep_suffix else ""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}"
        try:  # mode 0o666 minus the umask, as open() would give
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
            )
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temp file beside {path}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    try:  # makes the rename durable; not possible on every platform / file system
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path``; when the block succeeds it replaces ``path``.

    Args:
        path: the destination (its directory is created).
        keep_suffix: end the temp name with the destination's suffixes (``.jsonl.gz``), for
            writers that choose the format from the name (lhotse, soundfile).
    """
    path = _as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path, keep_suffix)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path`` for writing (``"wb"`` or ``"w"``); it replaces ``path``
    when the block succeeds."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f
        f.flush()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"atomic_write_bytes(path, data): data must be bytes, got {type(data).__name__} "
            "(the destination path comes first)"
        )
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8 by default)."""
    if not isinstance(text, str):
        raise TypeError(
            f"atomic_write_text(path, text): text must be a str, got {type(text).__name__} "
            "(the destination path comes first)"
        )
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files that killed writers left in ``directory`` (not recursive).

    Call it only when no writer is working in ``directory`` (e.g. when a run starts).
    Returns the removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in sorted(directory.iterdir()):
        if p.is_file() and is_temp_name(p.name):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    if removed:
        logger.info(
            "removed %d temp file(s) left by an interrupted run in %s: %s",
            len(removed),
            directory,
            ", ".join(p.name for p in removed),
        )
    return removed
