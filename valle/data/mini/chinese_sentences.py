"""More Mandarin text for the mini corpus: sentences cut from Debian's ``fortunes-zh`` files.

The committed Mandarin list (``mini_zh_sentences.txt``, about 40 sentences) is kept for the
held-out test voices; the training voices read sentences from the installed ``fortunes-zh``
package (modern prose in ``chinese``, the Tang poems of ``tang300``, the Song poems of
``song100``: about 14,000 sentences), read here at corpus time and never committed, as
:mod:`valle.data.mini.fortune_sentences` does for English.

Kept: sentences (cut at ``。！？``) of 6-36 Han characters holding only Han characters and
``，、`` inside (``；：`` become ``，``; quotation marks and book-title brackets are dropped).
Dropped: title and author lines (the files colour them with terminal escape codes), and
sentences with Latin letters, digits or other symbols, which espeak-ng's Mandarin voice
spells out or reads as English.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CHINESE_FORTUNE_FILES", "chinese_sentences"]

FORTUNE_DIR = Path("/usr/share/games/fortunes")
CHINESE_FORTUNE_FILES: tuple[str, ...] = ("chinese", "tang300", "song100")
"""The files of Debian's ``fortunes-zh`` package, read in this order."""

MIN_HAN = 6
MAX_HAN = 36

_HAN = "\u4e00-\u9fff"
_SENTENCE = re.compile(r"[^。！？]+[。！？]")
_CLEAN = re.compile(rf"^[{_HAN}，、]+[。！？]$")
_DROP = re.compile(r"[“”‘’《》「」『』〈〉（）()【】]")


def _records(text: str) -> list[str]:
    """Records (between ``%`` lines) with title/author lines (escape-coloured) dropped; the
    remaining lines joined (prose is wrapped mid-sentence, poems one clause pair a line)."""
    out = []
    for raw in re.split(r"^%\s*$", text, flags=re.M):
        lines = [ln.strip() for ln in raw.splitlines() if ln.strip() and "\x1b" not in ln]
        if lines:
            out.append("".join(lines))
    return out


def split_chinese_sentences(text: str) -> list[str]:
    """Clean sentences of one record (see the module doc)."""
    text = _DROP.sub("", text).replace("；", "，").replace("：", "，")
    out = []
    for m in _SENTENCE.finditer(text):
        s = m.group().strip("，、 ")
        han = len(re.findall(f"[{_HAN}]", s))
        if _CLEAN.match(s) and MIN_HAN <= han <= MAX_HAN:
            out.append(s)
    return out


def chinese_sentences(
    fortune_dir: Path = FORTUNE_DIR, files: tuple[str, ...] = CHINESE_FORTUNE_FILES
) -> list[str]:
    """Clean Mandarin sentences from the installed ``fortunes-zh`` files, in a fixed order,
    without duplicates."""
    missing = [name for name in files if not (fortune_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Debian's fortunes-zh data files are missing from {fortune_dir} "
            f"({', '.join(missing)}); install them with 'apt-get install fortunes-zh' "
            "(tools/setup.sh does)"
        )
    out: list[str] = []
    seen: set[str] = set()
    for name in files:
        text = (fortune_dir / name).read_text(encoding="utf-8", errors="replace")
        for record in _records(text):
            for sentence in split_chinese_sentences(record):
                if sentence not in seen:
                    seen.add(sentence)
                    out.append(sentence)
    return out
