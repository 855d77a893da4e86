"""Punctuation tokens shared by every front end.

All languages map their punctuation onto one small canonical set, so ``，`` (zh), ``、`` (ja)
and ``,`` (en) are the same token and a multilingual model (VALL-E X) sees one pause symbol.
"""

from __future__ import annotations

import re

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
