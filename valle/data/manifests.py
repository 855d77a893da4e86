"""Atomic writes for manifests, tables and JSON facts.

Every file is written by :mod:`valle.io.atomic` (a temp name in the same directory, fsync, then
``os.replace``), so an interrupted stage never leaves a half-written manifest that a later stage
would trust.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lhotse import CutSet, RecordingSet, SupervisionSet
from lhotse.utils import fastcopy

from valle.io.atomic import atomic_path as _atomic_path
from valle.io.atomic import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "atomic_path",
    "save_cuts_atomic",
    "write_json_atomic",
    "load_cuts",
    "cuts_from_manifests",
    "with_recording_ids",
    "file_stamp",
    "tree_fingerprint",
]


def atomic_path(path: str | Path) -> Any:
    """A temp path beside ``path`` with the same suffixes (lhotse picks the format from them);
    it replaces ``path`` when the block succeeds (:func:`valle.io.atomic.atomic_path`)."""
    return _atomic_path(path, keep_suffix=True)


def save_cuts_atomic(cuts: CutSet, path: str | Path) -> Path:
    """Write a CutSet (format from the suffix, e.g. ``.jsonl.gz``) atomically."""
    with atomic_path(path) as tmp:
        cuts.to_file(tmp)
    return Path(path)


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as pretty JSON atomically (object first, as ``json.dump``)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_cuts(path: str | Path, what: str = "cuts") -> CutSet:
    """Load a cut manifest eagerly, with an error that says which stage makes it.

    Unlike ``CutSet.from_file``, an empty manifest gives an empty CutSet, not ``None``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} manifest {path} not found; run the earlier recipe stage that writes it"
        )
    cuts = CutSet.from_file(path)
    if cuts is None:  # lhotse returns None for an empty manifest (e.g. an empty dev split)
        return CutSet.from_cuts([])
    return cuts.to_eager()


def cuts_from_manifests(
    recordings: str | Path | RecordingSet, supervisions: str | Path | SupervisionSet
) -> CutSet:
    """One cut per recording with its supervisions (paths or manifests accepted)."""
    if not isinstance(recordings, RecordingSet):
        if not Path(recordings).is_file():
            raise FileNotFoundError(f"recordings manifest {recordings} not found; run stage 1")
        recordings = RecordingSet.from_file(recordings)
    if not isinstance(supervisions, SupervisionSet):
        if not Path(supervisions).is_file():
            raise FileNotFoundError(f"supervisions manifest {supervisions} not found; run stage 1")
        supervisions = SupervisionSet.from_file(supervisions)
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    cuts = with_recording_ids(cuts)
    no_sup = [c.id for c in cuts if not c.supervisions]
    if no_sup:
        logger.warning(
            "%d recording(s) without a transcript dropped, e.g. %s", len(no_sup), no_sup[0]
        )
        cuts = cuts.filter(lambda c: bool(c.supervisions)).to_eager()
    return cuts


def with_recording_ids(cuts: CutSet) -> CutSet:
    """Name each whole-recording cut after its recording (the corpus's utterance id).

    lhotse's ``CutSet.from_manifests`` adds a suffix to cut ids; corpus ids are what people
    (and evaluation lists) refer to. Ids stay unique or an error says why.
    """
    renamed = [fastcopy(c, id=c.recording_id) for c in cuts]
    if len({c.id for c in renamed}) != len(renamed):
        raise ValueError("several cuts share a recording; keep lhotse's cut ids for this corpus")
    return CutSet.from_cuts(renamed)


def file_stamp(path: str | Path) -> list[int]:
    """``[size in bytes, mtime in ns]`` of a file: changes when the file is edited or replaced."""
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def tree_fingerprint(root: str | Path, files: Iterable[Path] | None = None) -> str:
    """SHA-1 over the relative path, size and mtime of every file under ``root`` (or of
    ``files``): a stage records it beside its outputs and redoes them when it changes (a
    fixed transcript, a replaced wav, a file added or removed). Stat only, no reading, so it
    stays cheap on a large corpus."""
    root = Path(root)
    paths = sorted(p for p in (root.rglob("*") if files is None else files) if p.is_file())
    h = hashlib.sha1()
    for p in paths:
        size, mtime = file_stamp(p)
        h.update(f"{p.relative_to(root).as_posix()}\t{size}\t{mtime}\n".encode())
    return h.hexdigest()
