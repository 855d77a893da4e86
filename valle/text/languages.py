"""Language ids for the language-ID embedding of VALL-E X (Zhang et al. 2023, Sec. 3.2).

The ids are part of every checkpoint's input contract: append new languages, never renumber.
"""

from __future__ import annotations

from valle.text.errors import UnsupportedLanguageError

LANGUAGES: dict[str, int] = {"en": 0, "zh": 1, "ja": 2}


def language_id(lang: str) -> int:
    """Return the integer id of ``lang`` (an ISO 639-1 code such as ``"en"``).

    Raises:
        UnsupportedLanguageError: ``lang`` is not one of :data:`LANGUAGES` (the message lists them).
    """
    if not isinstance(lang, str) or lang not in LANGUAGES:
        raise UnsupportedLanguageError(lang, LANGUAGES)
    return LANGUAGES[lang]
