"""English G2P: espeak-ng through phonemizer, IPA phones with stress marks.

Output tokens: one IPA phone per token with its primary/secondary stress mark attached
(``ˈoʊ``, ``ˌɪ``), :data:`~valle.text.punctuation.WORD_BOUNDARY` (``_``) between words, and
punctuation from :data:`~valle.text.punctuation.PUNCTUATION` as tokens of their own.

    >>> EnglishFrontend()("Hello, world!")          # doctest: +SKIP
    ['h', 'ə', 'l', 'ˈoʊ', ',', '_', 'w', 'ˈɜː', 'l', 'd', '!']
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from collections.abc import Collection, Sequence
from typing import Any

from valle.text.errors import EmptyTextError, MissingDependencyError, UnsupportedCharactersError
from valle.text.normalize import normalize_english
from valle.text.punctuation import PUNCTUATION, WORD_BOUNDARY, split_punctuation

logger = logging.getLogger(__name__)

_PHONE_SEP = " "
_WORD_SEP = "\t"  # never produced by espeak and removed from input by normalisation


def _make_backend(voice: str) -> Any:
    try:
        from phonemizer.backend import EspeakBackend  # type: ignore[import-untyped]
    except ImportError as e:  # pragma: no cover - phonemizer is a core dependency
        raise MissingDependencyError(
            "the English front end needs phonemizer: pip install phonemizer"
        ) from e
    try:
        return EspeakBackend(
            voice,
            preserve_punctuation=True,
            punctuation_marks=PUNCTUATION,
            with_stress=True,
            language_switch="remove-flags",
            words_mismatch="ignore",  # espeak joins some words ("fivehundred"): expected
        )
    except RuntimeError as e:
        raise MissingDependencyError(
            f"espeak-ng could not be loaded for voice {voice!r} ({e}); install it with "
            "`apt-get install espeak-ng` (or set PHONEMIZER_ESPEAK_LIBRARY to libespeak-ng.so)"
        ) from e


def non_latin_letters(text: str) -> list[str]:
    """Letters of scripts other than Latin (espeak-ng en would read 你 as "Chinese letter")."""
    return [
        ch
        for ch in text
        if unicodedata.category(ch).startswith("L")
        and not unicodedata.name(ch, "").startswith("LATIN")
    ]


class EnglishFrontend:
    """English text -> IPA phone tokens (espeak-ng ``en-us``).

    The espeak backend is created once per front end (creating it is slow) and reused;
    :meth:`batch` phonemizes many texts in one espeak call, which is how corpora should be
    tokenized.
    """

    language = "en"

    def __init__(self, voice: str = "en-us") -> None:
        self.voice = voice
        self._backend = _make_backend(voice)
        self._lock = threading.Lock()  # the espeak library is not re-entrant

    def __call__(self, text: str, punctuation: Collection[str] | None = None) -> list[str]:
        return self.batch([text], punctuation)[0]

    def batch(
        self, texts: Sequence[str], punctuation: Collection[str] | None = None
    ) -> list[list[str]]:
        """Phonemize many texts at once; raises :class:`EmptyTextError` naming the first
        text (by index) with nothing pronounceable. ``punctuation``: the marks the model
        knows (see :func:`~valle.text.normalize.basic_normalize`)."""
        if isinstance(texts, str):
            raise TypeError("batch() takes a list of texts; call the front end for one text")
        normalized = [normalize_english(t, punctuation) for t in texts]

        def name(i: int) -> str:
            return f"text {i}" if len(texts) > 1 else "the text"

        for i, t in enumerate(normalized):
            if not t:
                raise EmptyTextError(
                    f"{name(i)} ({texts[i]!r}) is empty after normalisation (emoji and "
                    "soundless marks such as '*' are dropped)"
                )
            foreign = non_latin_letters(t)
            if foreign:
                raise UnsupportedCharactersError(
                    foreign, "English (tokenize it with its own language, e.g. 'zh')", texts[i]
                )
        from phonemizer.separator import Separator  # type: ignore[import-untyped]

        sep = Separator(phone=_PHONE_SEP, word=_WORD_SEP, syllable="")
        with self._lock:
            phonemized = self._backend.phonemize(normalized, separator=sep, strip=True, njobs=1)
        if len(phonemized) != len(normalized):  # pragma: no cover - defensive
            raise RuntimeError(
                f"espeak returned {len(phonemized)} lines for {len(normalized)} texts"
            )
        out = []
        for i, line in enumerate(phonemized):
            tokens = self._tokens(line)
            if not any(t not in PUNCTUATION and t != WORD_BOUNDARY for t in tokens):
                raise EmptyTextError(
                    f"{name(i)} ({texts[i]!r}) has nothing pronounceable in it "
                    f"(espeak-ng output: {line!r})"
                )
            out.append(tokens)
        return out

    @staticmethod
    def _tokens(line: str) -> list[str]:
        tokens: list[str] = []
        for word in line.split(_WORD_SEP):
            phones = [
                p for chunk in word.split(_PHONE_SEP) if chunk for p in split_punctuation(chunk)
            ]
            if not phones:
                continue
            if tokens:
                tokens.append(WORD_BOUNDARY)
            tokens.extend(phones)
        return tokens

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # the espeak backend wraps a C library: pickling (e.g. to DataLoader workers)
        # re-creates it in the receiving process
        return (EnglishFrontend, (self.voice,))

    def __repr__(self) -> str:
        return f"EnglishFrontend(voice={self.voice!r})"
