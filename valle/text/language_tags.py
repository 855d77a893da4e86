"""Multilingual text: language tags, script-based language detection, phonemes with a
language per token (VALL-E X, code-switched input).

A text may mark its languages with tags, each segment opened and closed by the same tag::

    [EN]Hello,[EN][ZH]你好。[ZH][JA]こんにちは。[JA]

Tags are ``[EN]``, ``[ZH]``, ``[JA]`` (one per :data:`~valle.text.LANGUAGES` code, any case).
A tag inside another language's segment (``[EN]a[ZH]b[ZH][EN]``), a segment left open (a
stray third ``[EN]`` opens one) and an unknown code (``[FR]``) raise
:class:`LanguageTagError` naming the tag and its column.

Untagged text is either in one given language or, with ``language="auto"`` (or None),
split by script (:func:`detect_language_segments`): kana is Japanese; Han characters are
Japanese when their sentence has kana, else Mandarin; Latin letters are English. Digits,
spaces and punctuation belong to the segment they follow (or the first one). A sentence
ends at ``。！？.!?`` or a line break, so "nearby" kana means kana in the same sentence.

:func:`tokenize_multilingual` gives the phonemes of every segment from its language's front
end and the language id of every phoneme (the ``language_tokens`` VALL-E X reads).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from valle.text.errors import EmptyTextError, UnsupportedCharactersError
from valle.text.languages import LANGUAGES, language_id

__all__ = [
    "AUTO",
    "LanguageSegment",
    "LanguageTagError",
    "detect_language_segments",
    "dominant_language",
    "has_language_tags",
    "parse_language_tags",
    "split_languages",
    "tokenize_multilingual",
]

AUTO = "auto"  # language value asking for detection by script

_TAG = re.compile(r"\[([A-Za-z]{2})\]")
_SENTENCE_END = frozenset("。！？!?.\n")


class LanguageTagError(ValueError):
    """A malformed language tag (nested, unclosed, stray or unknown)."""


@dataclass(frozen=True)
class LanguageSegment:
    """A piece of text and its language code (None: untagged, not yet decided)."""

    text: str
    language: str | None


def _tags() -> str:
    return " ".join(f"[{code.upper()}]" for code in LANGUAGES)


def has_language_tags(text: str) -> bool:
    """Whether ``text`` holds a ``[XX]`` language tag."""
    return _TAG.search(text) is not None


def parse_language_tags(text: str) -> list[LanguageSegment]:
    """Split ``text`` at its language tags; untagged stretches get ``language=None``.

    Segments that are only whitespace are dropped.

    Raises:
        LanguageTagError: a nested, unclosed or unknown tag (the message gives its column).
    """
    segments: list[LanguageSegment] = []
    open_code: str | None = None
    open_at = 0
    pos = 0
    for m in _TAG.finditer(text):
        code = m.group(1).lower()
        col = m.start() + 1
        if code not in LANGUAGES:
            raise LanguageTagError(
                f"unknown language tag {m.group()} at column {col}; tags: {_tags()}"
            )
        piece = text[pos : m.start()]
        if open_code is None:
            if piece.strip():
                segments.append(LanguageSegment(piece, None))
            open_code, open_at = code, col
        elif code == open_code:
            if piece.strip():
                segments.append(LanguageSegment(piece, code))
            open_code = None
        else:
            raise LanguageTagError(
                f"language tag {m.group()} at column {col} is inside the "
                f"[{open_code.upper()}] segment opened at column {open_at}; tags do not nest: "
                f"close it first ([{open_code.upper()}]...[{open_code.upper()}]"
                f"{m.group()}...{m.group()})"
            )
        pos = m.end()
    if open_code is not None:
        raise LanguageTagError(
            f"language tag [{open_code.upper()}] at column {open_at} is never closed; end the "
            f"segment with another [{open_code.upper()}]"
        )
    rest = text[pos:]
    if rest.strip():
        segments.append(LanguageSegment(rest, None))
    return segments


# --------------------------------------------------------------------------- detection

_HAN, _KANA, _LATIN, _NEUTRAL, _OTHER = "han", "kana", "latin", "neutral", "other"


def _script(ch: str) -> str:
    cp = ord(ch)
    if (
        0x3040 <= cp <= 0x30FF  # hiragana, katakana (with the prolonged sound mark)
        or 0x31F0 <= cp <= 0x31FF  # katakana phonetic extensions
        or 0xFF66 <= cp <= 0xFF9F  # half-width katakana
    ) and ch not in "・゠":
        return _KANA
    if (
        0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x2FFFF
        or ch in "々〆"
    ):
        return _HAN
    if unicodedata.category(ch).startswith("L"):
        return _LATIN if "LATIN" in unicodedata.name(ch, "") else _OTHER
    return _NEUTRAL


def _sentences(text: str) -> list[str]:
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch in _SENTENCE_END:
            out.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        out.append(text[start:])
    return out


def detect_language_segments(text: str, fallback: str = "en") -> list[LanguageSegment]:
    """Split untagged ``text`` into runs of one language by script (see the module doc).

    Text without any letter is one segment in ``fallback``.

    Raises:
        UnsupportedCharactersError: letters of a script no language here uses (Hangul,
            Cyrillic, ...); tag or transliterate them.
    """
    other = [ch for ch in text if _script(ch) == _OTHER]
    if other:
        raise UnsupportedCharactersError(
            other, f"any of {', '.join(LANGUAGES)} (detection by script)", text
        )
    runs: list[list[str]] = []  # [language, text]
    pending = ""  # neutral characters before the first letter
    for sentence in _sentences(text):
        kana = any(_script(ch) == _KANA for ch in sentence)
        for ch in sentence:
            script = _script(ch)
            if script == _NEUTRAL:
                if runs:
                    runs[-1][1] += ch
                else:
                    pending += ch
                continue
            lang = {_KANA: "ja", _HAN: "ja" if kana else "zh", _LATIN: "en"}[script]
            if runs and runs[-1][0] == lang:
                runs[-1][1] += ch
            else:
                runs.append([lang, pending + ch])
                pending = ""
    if not runs:
        return [LanguageSegment(text, fallback)] if text.strip() else []
    runs[-1][1] += pending
    return [LanguageSegment(t, lang) for lang, t in runs]


def split_languages(
    text: str, language: str | None = AUTO, fallback: str = "en"
) -> list[LanguageSegment]:
    """``text`` as segments with a language each: tags first; untagged text in ``language``,
    or detected by script when ``language`` is ``"auto"`` or None. Neighbouring segments of
    one language are merged.

    Raises:
        LanguageTagError: malformed tags.
        UnsupportedLanguageError: an unknown ``language``.
        EmptyTextError: nothing but tags and whitespace.
    """
    auto = language is None or language == AUTO
    if not auto:
        language_id(language)  # type: ignore[arg-type]  # validates, listing the languages
    out: list[LanguageSegment] = []
    for seg in parse_language_tags(text):
        if seg.language is not None:
            parts = [seg]
        elif auto:
            parts = detect_language_segments(seg.text, fallback)
        else:
            parts = [LanguageSegment(seg.text, language)]
        for p in parts:
            if out and out[-1].language == p.language:
                out[-1] = LanguageSegment(out[-1].text + p.text, p.language)
            else:
                out.append(p)
    if not out:
        raise EmptyTextError(f"text {text!r} has nothing to say outside its language tags")
    return out


def tokenize_multilingual(
    text: str,
    language: str | None = AUTO,
    *,
    punctuation: Collection[str] | None = None,
    fallback: str = "en",
) -> tuple[list[str], list[int]]:
    """Phoneme tokens of a possibly code-switched ``text`` and the language id of each.

    Each segment of :func:`split_languages` goes through its language's front end
    (:func:`~valle.text.tokenize_text`); ``punctuation`` as there.

        >>> tokenize_multilingual("[EN]OK.[EN][ZH]好。[ZH]")  # doctest: +SKIP
        (['ˈoʊ', 'k', 'ˈeɪ', '.', 'h', 'ao3', '.'], [0, 0, 0, 0, 1, 1, 1])
    """
    from valle.text.frontend import tokenize_text

    tokens: list[str] = []
    ids: list[int] = []
    for seg in split_languages(text, language, fallback):
        assert seg.language is not None
        part = tokenize_text(seg.text, seg.language, punctuation=punctuation)
        tokens += part
        ids += [language_id(seg.language)] * len(part)
    return tokens, ids


def dominant_language(ids: Sequence[int]) -> int:
    """The id most tokens have (ties: the one that comes first); e.g. the language of the
    speech to generate for a code-switched target text."""
    if not ids:
        raise ValueError("no language ids")
    counts = Counter(ids)
    best = max(counts.values())
    return next(i for i in ids if counts[i] == best)
