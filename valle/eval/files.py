"""Atomic writers and readers for the evaluation outputs (CSV, JSON, JSON lines, PNG).

Every file is written by :mod:`valle.io.atomic` (temp file beside it, fsync, ``os.replace``), so a
crash never leaves a half-written table behind.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from valle.io.atomic import atomic_path, atomic_write_text

__all__ = [
    "atomic_path",
    "read_csv",
    "read_json",
    "read_jsonl",
    "write_csv",
    "write_json",
    "write_jsonl",
    "write_text_atomic",
]


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_text(path, text)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file, with an error that names the file when it is malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); write it again") from e


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line, atomically."""
    lines = [json.dumps(dict(r), ensure_ascii=False) for r in rows]
    return write_text_atomic(path, "".join(line + "\n" for line in lines))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file (blank lines skipped); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"list file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno} is not a JSON object ({e})") from e
    return rows


def write_csv(
    path: str | Path, fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> Path:
    """Write a CSV table with a header row, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fieldnames})
    return write_text_atomic(path, buf.getvalue())


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Read a CSV table with a header row into dicts of strings."""
    with Path(path).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
