"""Mandarin G2P: pypinyin initials and tone-numbered finals.

Each Han character becomes its initial (omitted for zero-initial syllables) and its final with
the tone number 1-5 (5 = neutral tone), in pypinyin's strict scheme: 你好 -> ``n i3 h ao3``
(``i2`` with tone sandhi), 有 -> ``iou3``, 女 -> ``n v3``. Tone sandhi (third-tone, 一, 不) is
applied by default, so tokens describe what is said.

Non-Han input:

* Arabic numerals are read as Mandarin (rules in :mod:`valle.text.chinese_numbers`);
* runs of Latin letters (``iPhone``, ``CPU``) go through the English front end (espeak-ng),
  as in code-switched VALL-E X data;
* punctuation is folded onto the shared set (``，`` -> ``,``, ``。`` -> ``.``, ``《》`` -> ``"``);
* whitespace and ``·`` separate words and are not tokens;
* emoji and soundless marks (``*``) are dropped (:mod:`valle.text.punctuation`);
* anything else (kana, Cyrillic, ``@``) raises :class:`UnsupportedCharactersError`
  listing the characters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Sequence

from valle.text.chinese_numbers import verbalize_numbers
from valle.text.errors import EmptyTextError, MissingDependencyError, UnsupportedCharactersError
from valle.text.normalize import basic_normalize
from valle.text.punctuation import PUNCTUATION

logger = logging.getLogger(__name__)

_FINAL = re.compile(r"[a-z]+[1-5]")  # pypinyin echoes characters it has no reading for
_INITIAL = re.compile(r"[a-z]*")
_FULLWIDTH_NUMERIC = str.maketrans("０１２３４５６７８９％．", "0123456789%.")

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_SEGMENT = re.compile(
    rf"(?P<han>[{_HAN}]+)"
    r"|(?P<latin>[A-Za-z]+(?:['\- ]+[A-Za-z]+)*)"
    rf"|(?P<punct>[{re.escape(PUNCTUATION)}])"
    r"|(?P<space>[\s·]+)"
    r"|(?P<other>.)",
    re.DOTALL,
)


class MandarinFrontend:
    """Mandarin text -> pinyin initials + tone-numbered finals.

    Args:
        english: front end for Latin-letter runs; ``None`` uses ``get_frontend("en")``
            lazily (only when Latin letters occur).
        tone_sandhi: apply pypinyin's tone sandhi rules (third tone, 一, 不).
    """

    language = "zh"

    def __init__(
        self,
        english: Callable[[str], list[str]] | None = None,
        tone_sandhi: bool = True,
    ) -> None:
        try:
            import pypinyin
        except ImportError as e:  # pragma: no cover - pypinyin is a core dependency
            raise MissingDependencyError(
                "the Mandarin front end needs pypinyin: pip install pypinyin"
            ) from e
        self._pypinyin = pypinyin
        self._english_arg = english
        self._english = english
        self.tone_sandhi = tone_sandhi

    def normalize(self, text: str, punctuation: Collection[str] | None = None) -> str:
        """Numbers to Han characters, NFKC, shared punctuation (only the marks in
        ``punctuation`` when given), collapsed whitespace."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        # Numbers first: NFKC would turn the full-width comma in "100，200" into an ASCII
        # thousands separator.
        text = verbalize_numbers(text.translate(_FULLWIDTH_NUMERIC))
        return basic_normalize(text, punctuation)

    def __call__(self, text: str, punctuation: Collection[str] | None = None) -> list[str]:
        normalized = self.normalize(text, punctuation)
        tokens: list[str] = []
        unsupported: list[str] = []
        for m in _SEGMENT.finditer(normalized):
            kind = m.lastgroup
            chunk = m.group()
            if kind == "han":
                tokens.extend(self._han(chunk))
            elif kind == "latin":
                tokens.extend(self._latin(chunk))
            elif kind == "punct":
                tokens.append(chunk)
            elif kind == "other":
                unsupported.append(chunk)
        if unsupported:
            raise UnsupportedCharactersError(unsupported, "Mandarin", text)
        if not any(t not in PUNCTUATION for t in tokens):
            raise EmptyTextError(f"Mandarin text {text!r} has nothing pronounceable in it")
        return tokens

    def batch(
        self, texts: Sequence[str], punctuation: Collection[str] | None = None
    ) -> list[list[str]]:
        """Tokenize many texts (same as calling the front end on each)."""
        return [self(t, punctuation) for t in texts]

    def _han(self, chunk: str) -> list[str]:
        pp = self._pypinyin
        kwargs = {"strict": True, "neutral_tone_with_five": True, "tone_sandhi": self.tone_sandhi}
        initials = pp.lazy_pinyin(chunk, style=pp.Style.INITIALS, **kwargs)
        finals = pp.lazy_pinyin(chunk, style=pp.Style.FINALS_TONE3, **kwargs)
        if len(initials) != len(chunk) or len(finals) != len(chunk):  # pragma: no cover
            raise RuntimeError(f"pypinyin returned an unexpected segmentation for {chunk!r}")
        tokens: list[str] = []
        for char, initial, final in zip(chunk, initials, finals, strict=True):
            if not final:  # syllabic nasals (嗯 n2, 呣 m2) have no strict-scheme final
                final = pp.lazy_pinyin(
                    char, style=pp.Style.FINALS_TONE3, **{**kwargs, "strict": False}
                )[0]
            if not _FINAL.fullmatch(final) or not _INITIAL.fullmatch(initial):
                raise UnsupportedCharactersError([char], "Mandarin (no pinyin known)", chunk)
            if initial:
                tokens.append(initial)
            tokens.append(final)
        return tokens

    def _latin(self, chunk: str) -> list[str]:
        # Latin words inside Mandarin text are read by the English front end. It is made here
        # on first use (valle.text.frontend builds this class, so importing it here would
        # make the two modules import each other).
        if self._english is None:
            from valle.text.english import EnglishFrontend

            self._english = EnglishFrontend()
        return self._english(chunk)

    def __reduce__(self) -> tuple[type, tuple[object, bool]]:
        return (MandarinFrontend, (self._english_arg, self.tone_sandhi))

    def __repr__(self) -> str:
        return f"MandarinFrontend(tone_sandhi={self.tone_sandhi})"
