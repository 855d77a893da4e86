"""Text normalisation before WER/CER scoring.

The VALL-E papers score ASR transcripts of synthesized speech against the reference transcript
after normalisation (VALL-E §5.1 uses a HuBERT CTC ASR whose output is upper-case letters with
no punctuation, so both sides are case- and punctuation-folded). The English normaliser here
follows the same practice and the cheap parts of the Whisper English normaliser: lower case,
bracketed non-speech tags removed, diacritics stripped, punctuation removed (apostrophes inside
words kept), hyphens split, digits spelled out as words, a few titles expanded, whitespace
collapsed. Whisper's normaliser maps words to digits; we map digits to words instead, which makes
the same pairs equal ("1990" and "nineteen ninety" both become "nineteen ninety").

Mandarin and Japanese are scored by character error rate: :class:`CharacterNormalizer` strips
spaces, punctuation and symbols so that only the characters are compared.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Protocol

__all__ = [
    "TextNormalizer",
    "EnglishNormalizer",
    "BasicNormalizer",
    "CharacterNormalizer",
    "CHARACTER_LANGUAGES",
    "normalizer_for",
    "is_character_language",
    "number_to_words",
    "ordinal_to_words",
    "year_to_words",
    "expand_numbers",
]

#: Languages scored by character error rate (no word boundaries in their script).
CHARACTER_LANGUAGES = frozenset({"zh", "ja", "cmn", "yue"})


class TextNormalizer(Protocol):
    """Maps a raw transcript to the form that is scored."""

    def __call__(self, text: str) -> str: ...


# --------------------------------------------------------------------------- numbers to words
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [
    (10**12, "trillion"),
    (10**9, "billion"),
    (10**6, "million"),
    (10**3, "thousand"),
]
_ORDINAL_EXCEPTIONS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n > 0:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """Cardinal number in American English words, no "and": ``105 -> "one hundred five"``."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n >= 10**15:
        # Too large to read as a number: read digit by digit.
        return " ".join(_ONES[int(d)] for d in str(n))
    words: list[str] = []
    for scale, name in _SCALES:
        if n >= scale:
            words += _below_thousand(n // scale) + [name]
            n %= scale
    words += _below_thousand(n)
    return " ".join(words)


def ordinal_to_words(n: int) -> str:
    """Ordinal number in words: ``21 -> "twenty first"``."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_EXCEPTIONS:
        words[-1] = _ORDINAL_EXCEPTIONS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_to_words(n: int) -> str:
    """Read a year the way people say it: ``1990 -> "nineteen ninety"``, ``1905 -> "nineteen
    oh five"``, ``2005 -> "two thousand five"``, ``1800 -> "eighteen hundred"``."""
    if not 1000 <= n <= 9999 or 2000 <= n <= 2009 or n % 1000 == 0:
        return number_to_words(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return f"{number_to_words(hi)} hundred"
    if lo < 10:
        return f"{number_to_words(hi)} oh {number_to_words(lo)}"
    return f"{number_to_words(hi)} {number_to_words(lo)}"


def _digits(s: str) -> str:
    return " ".join(_ONES[int(d)] for d in s)


_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}

_NUM = r"\d+(?:,\d{3})*"
_CURRENCY_RE = re.compile(r"([$£€])\s?(" + _NUM + r")(?:\.(\d{1,2}))?\b")
_PERCENT_RE = re.compile(r"(" + _NUM + r"(?:\.\d+)?)\s?%")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL_RE = re.compile(r"\b(" + _NUM + r")\.(\d+)\b")
_INT_RE = re.compile(r"\b" + _NUM + r"\b")


def _int_words(token: str) -> str:
    if "," not in token and len(token) == 4 and 1100 <= int(token) <= 2099:
        return year_to_words(int(token))
    if len(token) > 1 and token.startswith("0"):
        return _digits(token)  # "007" is read digit by digit
    return number_to_words(int(token.replace(",", "")))


def _decimal_words(whole: str, frac: str) -> str:
    return f"{number_to_words(int(whole.replace(',', '')))} point {_digits(frac)}"


def expand_numbers(text: str) -> str:
    """Spell out currency amounts, percentages, ordinals, decimals, years and integers."""

    def currency(m: re.Match[str]) -> str:
        one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
        whole = int(m.group(2).replace(",", ""))
        out = f"{number_to_words(whole)} {one if whole == 1 else many}"
        if m.group(3):
            cents = int(m.group(3).ljust(2, "0"))
            if cents:
                out += f" {number_to_words(cents)} {sub_one if cents == 1 else sub_many}"
        return out

    def percent(m: re.Match[str]) -> str:
        num = m.group(1)
        if "." in num:
            whole, frac = num.split(".", 1)
            return _decimal_words(whole, frac) + " percent"
        return number_to_words(int(num.replace(",", ""))) + " percent"

    text = _CURRENCY_RE.sub(currency, text)
    text = _PERCENT_RE.sub(percent, text)
    text = _ORDINAL_RE.sub(lambda m: ordinal_to_words(int(m.group(1))), text)
    text = _DECIMAL_RE.sub(lambda m: _decimal_words(m.group(1), m.group(2)), text)
    text = _INT_RE.sub(lambda m: _int_words(m.group(0)), text)
    return text


# --------------------------------------------------------------------------- normalisers
_BRACKETS_RE = re.compile(r"[<\[][^>\]]*[>\]]|\([^)]*\)")
_TITLES = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miss",
    "dr": "doctor",
    "prof": "professor",
    "st": "saint",
    "jr": "junior",
    "sr": "senior",
}
_TITLE_RE = re.compile(r"\b(" + "|".join(_TITLES) + r")\.(?=\s)", re.IGNORECASE)
_SPACES_RE = re.compile(r"\s+")
# "one hundred and five" and "one hundred five" are the same number.
_NUMBER_AND_RE = re.compile(r"\b(hundred|thousand|million|billion|trillion) and\b")


def _strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _punctuation_to_space(text: str, keep: str = "") -> str:
    out = []
    for c in text:
        cat = unicodedata.category(c)
        if c in keep:
            out.append(c)
        elif cat[0] in "PS":  # punctuation and symbols
            out.append(" ")
        else:
            out.append(c)
    return "".join(out)


class EnglishNormalizer:
    """English transcript normaliser (see module docstring for the steps and their order)."""

    def __call__(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        text = text.replace("\u2019", "'").replace("\u2018", "'")
        text = _BRACKETS_RE.sub(" ", text)
        text = _TITLE_RE.sub(lambda m: _TITLES[m.group(1).lower()], text)
        text = text.replace("&", " and ")
        text = expand_numbers(text)
        text = _strip_diacritics(text).lower()
        text = _punctuation_to_space(text, keep="'")
        # Apostrophes only survive inside words ("don't"), not as quotes ('hello').
        text = re.sub(r"(?<![a-z0-9])'|'(?![a-z0-9])", " ", text)
        text = _NUMBER_AND_RE.sub(r"\1", text)
        return _SPACES_RE.sub(" ", text).strip()


class BasicNormalizer:
    """Language-neutral normaliser: NFKC, lower case, bracketed tags, punctuation, spaces.

    Digits are kept as digits (no number reading for languages without a speller here).
    """

    def __call__(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        text = _BRACKETS_RE.sub(" ", text).lower()
        text = _punctuation_to_space(text)
        return _SPACES_RE.sub(" ", text).strip()


class CharacterNormalizer:
    """For character error rate (Mandarin, Japanese): NFKC (full-width forms folded), lower case,
    then every space, punctuation mark and symbol removed."""

    def __call__(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        text = _BRACKETS_RE.sub(" ", text).lower()
        text = _punctuation_to_space(text)
        return _SPACES_RE.sub("", text)


class JapaneseReadingNormalizer(CharacterNormalizer):
    """Japanese CER on readings: the text becomes its katakana reading (pyopenjtalk) before the
    character normalisation, so kana and kanji spellings of the same words compare equal (Whisper
    answers in kanji; transcripts such as the mini corpus's are written in kana). Without
    pyopenjtalk the characters are compared as written."""

    def __call__(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        if text.strip():
            try:
                import pyopenjtalk
            except ImportError:
                return super().__call__(text)
            text = str(pyopenjtalk.g2p(text, kana=True))  # kana=True: one string
        return super().__call__(text)


def is_character_language(language: str | None) -> bool:
    """True when ``language`` (ISO 639 code, e.g. ``"zh"``, ``"ja"``) is scored by CER."""
    return language is not None and language.lower().split("-")[0] in CHARACTER_LANGUAGES


def normalizer_for(language: str | None) -> TextNormalizer:
    """The normaliser used for ``language``: English for ``"en"``/``None``, character-level for
    Mandarin (Japanese: on katakana readings), :class:`BasicNormalizer` otherwise."""
    if language is None or language.lower().split("-")[0] == "en":
        return EnglishNormalizer()
    if language is not None and language.lower().split("-")[0] == "ja":
        return JapaneseReadingNormalizer()
    if is_character_language(language):
        return CharacterNormalizer()
    return BasicNormalizer()
