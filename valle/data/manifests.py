"""Atomic writes for manifests, tables and JSON facts.

Every file is written to a temporary name in the same directory and then moved into place with
``os.replace``, so an interrupted stage never leaves a half-written manifest that a later stage
would trust.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lhotse import CutSet

logger = logging.getLogger(__name__)

__all__ = ["atomic_path", "save_cuts_atomic", "write_json_atomic", "write_text_atomic", "load_cuts"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffixes); move it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp{os.getpid()}.{path.name}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_cuts_atomic(cuts: CutSet, path: str | Path) -> Path:
    """Write a CutSet (format from the suffix, e.g. ``.jsonl.gz``) atomically."""
    with atomic_path(path) as tmp:
        cuts.to_file(tmp)
    return Path(path)


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as pretty JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return Path(path)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def load_cuts(path: str | Path, what: str = "cuts") -> CutSet:
    """Load a cut manifest eagerly, with an error that says which stage makes it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} manifest {path} not found; run the earlier recipe stage that writes it"
        )
    return CutSet.from_file(path).to_eager()
