"""Reference transcripts for WER: from a protocol list, a lhotse cuts manifest or a text list.

Shape legend: none (text).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RefItem", "load_references"]


@dataclass
class RefItem:
    """One reference: the item id, its transcript and its language (None: unknown)."""

    id: str
    text: str
    language: str | None = None


def _first_json_object(path: Path) -> dict[str, Any] | None:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    return obj if isinstance(obj, dict) else None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None
    return None


def load_references(path: str, field: str = "text") -> tuple[list[RefItem], str]:
    """References from a protocol list, a lhotse cuts manifest, or an ``id<whitespace>text`` list.

    ``field``: for protocol lists, ``text`` or ``target_text``. Returns the items and the kind of
    file (``"protocol"``, ``"cuts"``, ``"text"``).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"reference file not found: {path}")
    first = _first_json_object(p)
    if first is not None and "prompt_cut_id" in first:
        from valle.eval.protocols import read_protocol

        items = read_protocol(p)
        if field not in ("text", "target_text"):
            raise ValueError(f"--ref-field must be text or target_text, got {field}")
        return [RefItem(i.id, getattr(i, field), i.language) for i in items], "protocol"
    if first is not None and "supervisions" in first:
        from valle.eval.cuts import load_cuts

        refs = []
        for cut in load_cuts(path, eager=True):
            sups = [s for s in cut.supervisions if s.text]
            if sups:
                refs.append(RefItem(cut.id, " ".join(s.text for s in sups), sups[0].language))
        return refs, "cuts"
    refs = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"{path}:{lineno}: expected '<id> <text>', got {line!r}")
        refs.append(RefItem(parts[0], parts[1]))
    return refs, "text"
