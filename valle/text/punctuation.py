"""Punctuation tokens shared by every front end.

All languages map their punctuation onto one small canonical set, so ``，`` (zh), ``、`` (ja)
and ``,`` (en) are the same token and a multilingual model (VALL-E X) sees one pause symbol.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection

logger = logging.getLogger(__name__)

# Canonical punctuation tokens (each one character, each its own token).
PUNCTUATION: str = ',.!?;:"()—…¡¿'

# Word boundary token emitted between words by the English front end.
WORD_BOUNDARY: str = "_"

# Other marks folded onto the canonical set. Applied after NFKC, which already turns full-width
# ASCII (，！？：；（）) into plain ASCII.
_FOLD = {
    "。": ".",
    "｡": ".",
    "、": ",",
    "､": ",",
    "“": '"',
    "”": '"',
    "„": '"',
    "«": '"',
    "»": '"',
    "「": '"',
    "」": '"',
    "『": '"',
    "』": '"',
    "《": '"',
    "》": '"',
    "〈": '"',
    "〉": '"',
    "【": "(",
    "】": ")",
    "〔": "(",
    "〕": ")",
    "[": "(",
    "]": ")",
    "{": "(",
    "}": ")",
    "–": "—",
    "―": "—",
    "~": "—",
    "〜": "—",
    "～": "—",
}
_FOLD_TABLE = str.maketrans(_FOLD)
_ELLIPSIS = re.compile(r"\.{3,}|…+")
_DASHES = re.compile(r"—+|-{2,}")


def fold_punctuation(text: str) -> str:
    """Map language-specific punctuation onto :data:`PUNCTUATION`.

    ``...`` and runs of ``…`` become one ``…``; runs of dashes (``--``, ``——``) become one ``—``.
    Apostrophes and single hyphens are left alone (they belong to words).
    """
    text = text.translate(_FOLD_TABLE)
    text = _ELLIPSIS.sub("…", text)
    return _DASHES.sub("—", text)


# Marks that carry no sound in running text; espeak-ng would read some of them out
# ("asterisk"), the Mandarin front end would refuse them. Dropped before G2P.
SILENT_MARKS: str = "*_|\\^`•◦‣⁃†‡¶"
_SILENT = re.compile(f"[{re.escape(SILENT_MARKS)}]+")

# Emoji and pictographs (with their joiners, variation selectors, keycaps and tags): espeak-ng
# reads them by name ("grinning face"). Dropped before G2P with a warning.
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff"
    "\ufe0e\ufe0f\u200d\u20e3\U000e0020-\U000e007f]+"
)

# What a mark becomes when the model's symbol table lacks it, tried in turn until a known mark
# is found (None: dropped). Pauses stay pauses: a dash or a bracket becomes a comma, an ellipsis
# or an exclamation a full stop; quotes and inverted marks carry no sound.
FALLBACK: dict[str, str | None] = {
    "…": ".",
    "!": ".",
    "?": ".",
    ".": ",",
    ";": ",",
    ":": ",",
    "—": ",",
    "(": ",",
    ")": ",",
    ",": None,
    '"': None,
    "¡": None,
    "¿": None,
}
SENTENCE_END: str = ".!?…"
_STRENGTH = {".": 3, "!": 3, "?": 3, "…": 2, ";": 1, ":": 1, "—": 1, ",": 0}
_MARKS = re.escape(PUNCTUATION)
_MARK_RUN = re.compile(rf"\s*[{_MARKS}](?:\s*[{_MARKS}])*\s*")


def _substitute(mark: str, keep: Collection[str], mid_text: bool) -> str | None:
    """The first mark of ``mark``'s fallback chain that is in ``keep`` (None: none)."""
    if mark == "…" and mid_text:  # a trailing-off pause inside a sentence is a comma
        mark = ","
    seen: set[str] = set()
    cur: str | None = mark
    while cur is not None and cur not in keep and cur not in seen:
        seen.add(cur)
        cur = FALLBACK.get(cur)
    return cur if cur in keep else None


def fit_punctuation(text: str, keep: Collection[str]) -> str:
    """Rewrite the :data:`PUNCTUATION` marks of folded ``text`` that are not in ``keep`` (the
    marks a model's symbol table has) into marks that are, by :data:`FALLBACK`.

    A run of marks that holds a known mark just loses its unknown ones (``"later)."`` ->
    ``"later."``); a run of unknown marks becomes its strongest substitute attached to the
    previous word (``"a — b"`` -> ``"a, b"``), nothing at the start of the text, and at the
    end only a substitute of a sentence-final mark (``"left…"`` -> ``"left."``).
    """
    keep = frozenset(keep)
    if all(ch in keep for ch in text if ch in PUNCTUATION):
        return text

    def run(m: re.Match[str]) -> str:
        marks = [ch for ch in m.group() if not ch.isspace()]
        if all(ch in keep for ch in marks):
            return m.group()
        if any(ch in keep for ch in marks):  # a known mark already makes the pause
            kept = "".join(ch for ch in m.group() if ch not in PUNCTUATION or ch in keep)
            return re.sub(r"\s{2,}", " ", kept)
        if m.start() == 0:
            return ""
        at_end = m.end() == len(text)
        subs = [
            s
            for ch in marks
            if not at_end or ch in SENTENCE_END
            if (s := _substitute(ch, keep, mid_text=not at_end)) is not None
        ]
        best = max(subs, key=lambda s: _STRENGTH.get(s, 0)) if subs else ""
        # words stay apart ("word—next" -> "word, next"); CJK text has no spaces to keep
        if at_end:
            return best
        spaced = any(ch.isspace() for ch in m.group()) or text[m.end()] < "\u2e80"
        return best + " " if spaced else best

    return _MARK_RUN.sub(run, text)


def clean_punctuation(text: str, keep: Collection[str] | None = None) -> str:
    """Punctuation normalisation before G2P, on folded text (:func:`fold_punctuation`).

    Drops emoji (with a warning: espeak-ng would read out their names) and marks without sound
    (:data:`SILENT_MARKS`); with ``keep`` (the marks the model knows), rewrites the other
    marks of :data:`PUNCTUATION` by :func:`fit_punctuation`. What changed is logged at debug
    level.
    """
    out = text
    emoji = _EMOJI.findall(out)
    if emoji:
        logger.warning(
            "dropped emoji %s from %r: they cannot be spoken", " ".join(emoji), text[:80]
        )
        out = _EMOJI.sub(" ", out)
    out = _SILENT.sub(" ", out)
    if keep is not None:
        out = fit_punctuation(out, keep)
    if out != text:
        logger.debug("punctuation normalised: %r -> %r", text, out)
    return out


def split_punctuation(token: str) -> list[str]:
    """Split punctuation characters off a token: ``"ˈoʊ,"`` -> ``["ˈoʊ", ","]``."""
    if not any(ch in PUNCTUATION for ch in token):
        return [token]
    out: list[str] = []
    run = ""
    for ch in token:
        if ch in PUNCTUATION:
            if run:
                out.append(run)
                run = ""
            out.append(ch)
        else:
            run += ch
    if run:
        out.append(run)
    return out
