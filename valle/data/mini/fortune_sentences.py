"""More English text for the mini corpus: sentences cut from Debian's ``fortunes`` files.

The committed Alice sentences (:mod:`valle.data.mini.sentences`) are about 320 sentences, so the
training speakers of a corpus built from them alone read only ~160 different two-sentence texts:
a model can memorise that audio instead of learning to read (issue "The mini loop must speak";
``egs/mini/EXPERIMENTS.md``). Debian's ``fortunes`` package ships about 300k words of quotations
in plain text. They are read here at corpus time from the installed package (never committed),
split with the same rules as the Alice text (:func:`valle.data.mini.sentences.split_sentences`:
ASCII, 4-20 words, no duplicates), and only records that look like prose are kept: attribution
lines (``-- Author``), indented verse, dialogue scripts, numbered lists and records with
digits, URLs or code-like characters are dropped, since engines read them unevenly.

``tools/setup.sh`` installs the package; :func:`fortune_sentences` raises a clear error when it
is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

from valle.data.mini.sentences import split_sentences

__all__ = ["FORTUNE_DIR", "FORTUNE_FILES", "fortune_sentences"]

FORTUNE_DIR = Path("/usr/share/games/fortunes")
"""Where Debian's ``fortunes`` package puts its data files."""

FORTUNE_FILES: tuple[str, ...] = (
    "education",
    "food",
    "fortunes",
    "humorists",
    "kids",
    "law",
    "literature",
    "love",
    "medicine",
    "miscellaneous",
    "people",
    "pets",
    "platitudes",
    "politics",
    "science",
    "sports",
    "wisdom",
    "work",
)
"""Categories read, in this order (prose quotations; the ``computers``, ``songs-poems``, ``art``
and similar files are mostly code, verse or ASCII art)."""

_ATTRIBUTION = re.compile(r"^\s*--")
_BAD_RECORD = re.compile(r"[0-9@#$%^&*_=+<>{}\[\]|\\/~]|https?:|\w\.\w\.|[A-Z]{3,}")
_DIALOGUE = re.compile(r"^\s*[A-Z][A-Za-z .]{0,20}:\s")


def _records(text: str) -> list[str]:
    """Fortune records (separated by ``%`` lines), attribution lines dropped."""
    records = []
    for raw in re.split(r"^%\s*$", text, flags=re.M):
        lines = [ln for ln in raw.splitlines() if ln.strip()]
        lines = [ln for ln in lines if not _ATTRIBUTION.match(ln)]
        if not lines:
            continue
        if any(ln.startswith(("\t", "  ")) for ln in lines):
            continue  # verse, quoted dialogue, lists
        if any(_DIALOGUE.match(ln) for ln in lines):
            continue
        record = " ".join(ln.strip() for ln in lines)
        if _BAD_RECORD.search(record):
            continue
        records.append(record)
    return records


def fortune_sentences(
    fortune_dir: Path = FORTUNE_DIR, files: tuple[str, ...] = FORTUNE_FILES
) -> list[str]:
    """Clean English sentences from the installed ``fortunes`` files, in a fixed order."""
    missing = [name for name in files if not (fortune_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Debian's fortunes data files are missing from {fortune_dir} ({', '.join(missing)}); "
            "install them with 'apt-get install fortunes' (tools/setup.sh does)"
        )
    out: list[str] = []
    seen: set[str] = set()
    for name in files:
        text = (fortune_dir / name).read_text(encoding="utf-8", errors="replace")
        for record in _records(text):
            for sentence in split_sentences(record):
                if sentence not in seen:
                    seen.add(sentence)
                    out.append(sentence)
    return out
