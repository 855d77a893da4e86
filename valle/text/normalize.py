"""Text normalisation applied before G2P (whitespace, Unicode form, English symbols)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

from valle.text.punctuation import clean_punctuation, fold_punctuation

_SPACES = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    """Turn every run of whitespace (newlines, tabs, NBSP) into one space and strip the ends."""
    return _SPACES.sub(" ", text).strip()


def basic_normalize(text: str, punctuation: Collection[str] | None = None) -> str:
    """NFKC (full-width ASCII -> ASCII, compatibility forms), canonical punctuation, no emoji
    or soundless marks, and collapsed whitespace. Shared by every language.

    ``punctuation``: the marks the model knows (those of its symbol table); others are
    rewritten into known pauses or dropped (:func:`~valle.text.punctuation.fit_punctuation`).
    None keeps every mark of :data:`~valle.text.punctuation.PUNCTUATION` (corpus tokenization).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("’", "'").replace("‘", "'")
    return collapse_whitespace(clean_punctuation(fold_punctuation(text), punctuation))


_RANGE = re.compile(r"(\d)\s*[–—]\s*(?=\d)")  # "5–10": a range, read "5 to 10"
_CURRENCY = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros")}
_MONEY = re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d{1,2}))?\b")
_CENTS = {"$": ("cent", "cents"), "£": ("penny", "pence"), "€": ("cent", "cents")}


def _money(match: re.Match[str]) -> str:
    symbol, whole, frac = match.group(1), match.group(2), match.group(3)
    amount = int(whole.replace(",", ""))
    one, many = _CURRENCY[symbol]
    words = f"{whole} {one if amount == 1 else many}"
    if frac:
        cents = int(frac.ljust(2, "0"))
        if cents:
            c_one, c_many = _CENTS[symbol]
            words += f" {cents} {c_one if cents == 1 else c_many}"
    return words


_DOTTED_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)+(?![\w.]*\d)")


def _dotted_number(match: re.Match[str]) -> str:
    """``15.5`` -> ``15 point 5``, ``3.14`` -> ``3 point 1 4`` (decimals are read digit by
    digit), ``2.0.1`` -> ``2 point 0 point 1`` (a version or an address)."""
    parts = match.group(0).split(".")
    if len(parts) == 2:
        return f"{parts[0]} point {' '.join(parts[1])}"
    return " point ".join(parts)


def normalize_english(text: str, punctuation: Collection[str] | None = None) -> str:
    """English normalisation before espeak-ng.

    espeak-ng already reads cardinals, ordinals (``3rd``), ``%`` and digit groups (``1,500``)
    correctly; it reads ``$5`` as "dollar five", so currency amounts are rewritten here
    (``$5.50`` -> ``5 dollars 50 cents``), ``&`` becomes "and" and a dash between numbers "to"
    (``5–10`` -> ``5 to 10``, not a pause). Decimals are spelled out (``3.14`` -> ``3 point 1
    4``): espeak reads them, but the punctuation handling of the phonemizer package splits
    the text at their dot, and with more text after the number espeak then returns two lines
    for one text ("It is 3.14 here." failed to tokenize).
    """
    text = _RANGE.sub(r"\1 to ", text) if isinstance(text, str) else text
    text = basic_normalize(text, punctuation)
    text = _MONEY.sub(_money, text)
    text = _DOTTED_NUMBER.sub(_dotted_number, text)
    text = text.replace("&", " and ")
    return collapse_whitespace(text)
