"""The G2P front-end protocol, the per-language factory and :func:`tokenize_text`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from typing import Protocol, runtime_checkable

from valle.text.errors import EmptyTextError
from valle.text.languages import LANGUAGES, language_id

logger = logging.getLogger(__name__)


@runtime_checkable
class TextFrontend(Protocol):
    """Text of one language -> phoneme tokens (strings without whitespace).

    Implementations may also offer ``batch(texts) -> list[list[str]]`` for fast corpus
    tokenization; callers check with ``hasattr(frontend, "batch")``. valle's front ends also
    take ``punctuation=``, the marks a model knows (see :func:`tokenize_text`).
    """

    language: str

    def __call__(self, text: str) -> list[str]: ...


def _english() -> TextFrontend:
    from valle.text.english import EnglishFrontend

    return EnglishFrontend()


def _mandarin() -> TextFrontend:
    from valle.text.mandarin import MandarinFrontend

    return MandarinFrontend()


def _japanese() -> TextFrontend:
    from valle.text.japanese import JapaneseFrontend

    return JapaneseFrontend()


_FACTORIES: dict[str, Callable[[], TextFrontend]] = {
    "en": _english,
    "zh": _mandarin,
    "ja": _japanese,
}
assert set(_FACTORIES) == set(LANGUAGES), "every language id needs a front end"

_cache: dict[str, TextFrontend] = {}
_cache_lock = threading.Lock()


def get_frontend(lang: str) -> TextFrontend:
    """The default front end for ``lang`` (created once, then cached).

    Raises:
        UnsupportedLanguageError: ``lang`` is not in :data:`~valle.text.LANGUAGES`.
        MissingDependencyError: the language's G2P package is not installed (e.g. Japanese
            without ``pyopenjtalk-plus``); the message says what to install.
    """
    language_id(lang)  # validates, listing the supported languages on error
    with _cache_lock:
        frontend = _cache.get(lang)
        if frontend is None:
            logger.debug("creating the %s text front end", lang)
            frontend = _FACTORIES[lang]()
            _cache[lang] = frontend
    return frontend


def tokenize_text(text: str, lang: str, *, punctuation: Collection[str] | None = None) -> list[str]:
    """Phoneme tokens of ``text`` in language ``lang`` (``get_frontend(lang)(text)``, checked).

    Emoji (with a warning) and soundless marks such as ``*`` are dropped. ``punctuation``: the
    marks the model's symbol table has (e.g. ``{",", ".", "?"}``); other marks are rewritten
    into known pauses or dropped (``"a — b (c)…"`` -> ``"a, b, c."``), so real-world text does
    not fail on a quote or a dash. None keeps every canonical mark (corpus tokenization).

    Raises:
        TypeError: ``text`` is not a str.
        UnsupportedLanguageError: unknown ``lang``.
        EmptyTextError (a ValueError): empty text or nothing pronounceable.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    frontend = get_frontend(lang)
    if not text.strip():
        raise EmptyTextError(f"cannot tokenize empty {lang} text {text!r}")
    if punctuation is None:
        tokens = frontend(text)
    else:
        tokens = frontend(text, punctuation=punctuation)  # type: ignore[call-arg]
    if not tokens:
        raise EmptyTextError(f"{lang} text {text!r} gave no phoneme tokens")
    bad = [t for t in tokens if not isinstance(t, str) or not t or any(c.isspace() for c in t)]
    if bad:  # a front-end bug, not a user error: tokens.txt could not store these
        raise RuntimeError(f"the {lang} front end produced invalid tokens {bad!r} for {text!r}")
    return tokens
