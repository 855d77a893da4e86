"""Sentence lists for the offline mini corpus.

English text comes from the first two chapters of Lewis Carroll's *Alice's Adventures in
Wonderland* (1865, public domain; Project Gutenberg text as shipped by Debian's ``flite``
package in ``/usr/share/doc/flite/examples/alice``, which its copyright file lists as public
domain). :func:`split_sentences` turns that prose into short, clean, ASCII sentences; the result
is committed as ``valle/data/resources/mini_en_sentences.txt`` so that the corpus does not
depend on the package's documentation being installed. Mandarin and Japanese sentences were
written for this toolkit (``mini_zh_sentences.txt``, ``mini_ja_sentences.txt``, CC0).
"""

from __future__ import annotations

import re
from importlib import resources

MIN_WORDS = 4
MAX_WORDS = 20

_RESOURCE_PACKAGE = "valle.data.resources"
RESOURCE_FILES = {
    "en": "mini_en_sentences.txt",
    "zh": "mini_zh_sentences.txt",
    "ja": "mini_ja_sentences.txt",
}


def _normalise(text: str) -> str:
    """Drop quotation marks and brackets (keep apostrophes inside words), fix line-break hyphens."""
    text = text.replace("--", ", ")
    text = re.sub(r"[`\"()\[\]_*]", " ", text)
    text = re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", " ", text)
    text = re.sub(r"(\w)- (\w)", r"\1-\2", text)
    # Words set in capitals for emphasis ("TOOK A WATCH") are read letter by letter by some engines.
    text = re.sub(
        r"\b(?:[A-Z]{2,}|A|I)(?:[\s-]+(?:[A-Z]{2,}|A|I)\b)*",
        lambda m: m.group(0).lower() if re.search(r"[A-Z]{2,}", m.group(0)) else m.group(0),
        text,
    )
    return re.sub(r"\s+", " ", text)


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,;:.!?'])", r"\1", text)
    text = re.sub(r"^[,;:'\s]+", "", text)
    text = re.sub(r"[,;:\s]+$", "", text)
    if text and text[-1] not in ".!?":
        text += "."
    return text[:1].upper() + text[1:]


def _words(text: str) -> int:
    return len(text.split())


def _split_long(sentence: str) -> list[str]:
    """Split a sentence longer than MAX_WORDS at clause punctuation (; : , in that order)."""
    if _words(sentence) <= MAX_WORDS:
        return [sentence]
    for sep in (r"(?<=[;:])\s+", r"(?<=,)\s+"):
        parts = re.split(sep, sentence)
        if len(parts) == 1:
            continue
        # Greedily merge neighbouring clauses while they stay short enough.
        chunks: list[str] = []
        current = ""
        for part in parts:
            candidate = f"{current} {part}".strip()
            if current and _words(candidate) > MAX_WORDS:
                chunks.append(current)
                current = part
            else:
                current = candidate
        if current:
            chunks.append(current)
        if len(chunks) > 1:
            return [piece for chunk in chunks for piece in _split_long(chunk)]
    return [sentence]


def split_sentences(prose: str) -> list[str]:
    """Cut prose into clean sentences of MIN_WORDS..MAX_WORDS words (ASCII, no headings).

    Headings (lines in capitals, chapter titles) are dropped; long sentences are split at clause
    punctuation; duplicates are removed keeping the first occurrence.
    """
    lines = [
        line
        for line in prose.splitlines()
        if line.strip()
        and not re.match(r"^\s*(CHAPTER\b|[A-Z' .,:-]+$)", line)
        and not re.search(r"\bby [A-Z][a-z]+ [A-Z][a-z]+\.?\s*$", line)
    ]
    text = re.sub(r"\s+", " ", " ".join(lines))
    text = _normalise(text.encode("ascii", "ignore").decode())
    raw = re.split(r"(?<=[.!?])\s+", text)
    out: list[str] = []
    seen: set[str] = set()
    for sentence in raw:
        for piece in _split_long(sentence):
            cleaned = _clean(piece)
            if not MIN_WORDS <= _words(cleaned) <= MAX_WORDS:
                continue
            if not re.search(r"[a-z]", cleaned) or cleaned in seen:
                continue
            seen.add(cleaned)
            out.append(cleaned)
    return out


def load_sentences(language: str) -> list[str]:
    """The committed sentence list for ``language`` ("en", "zh" or "ja"), comments stripped."""
    if language not in RESOURCE_FILES:
        raise ValueError(
            f"no mini-corpus sentences for language {language!r}; use one of {sorted(RESOURCE_FILES)}"
        )
    text = resources.files(_RESOURCE_PACKAGE).joinpath(RESOURCE_FILES[language]).read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
