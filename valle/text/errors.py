"""Errors raised by the text front end.

Every error says what went wrong and what to do about it; each subclasses the built-in
exception a caller would naturally catch (``ValueError``, ``KeyError``, ``ImportError``).
"""

from __future__ import annotations

from collections.abc import Iterable


class UnsupportedLanguageError(ValueError):
    """A language code that valle has no front end / language id for."""

    def __init__(self, lang: object, supported: Iterable[str]) -> None:
        self.lang = lang
        self.supported = tuple(supported)
        super().__init__(
            f"unsupported language {lang!r}; supported languages: {', '.join(self.supported)}"
        )


class UnknownSymbolError(KeyError):
    """Tokens that are not in a :class:`~valle.text.SymbolTable`.

    ``symbols`` holds every unknown token (each once, in order of first appearance), so a
    caller can report all of them at once instead of fixing one at a time.
    """

    def __init__(self, symbols: Iterable[str], hint: str = "") -> None:
        self.symbols = tuple(dict.fromkeys(symbols))
        shown = ", ".join(repr(s) for s in self.symbols[:50])
        more = f" (and {len(self.symbols) - 50} more)" if len(self.symbols) > 50 else ""
        message = f"{len(self.symbols)} unknown symbol(s): {shown}{more}"
        if hint:
            message += f"; {hint}"
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class SymbolTableFormatError(ValueError):
    """A malformed ``tokens.txt`` (wrong field count, duplicate or missing ids, ...)."""


class EmptyTextError(ValueError):
    """Text that is empty or has nothing pronounceable in it."""


class UnsupportedCharactersError(ValueError):
    """Characters a front end cannot pronounce (e.g. Cyrillic in Mandarin text)."""

    def __init__(self, chars: Iterable[str], lang: str, text: str) -> None:
        self.chars = tuple(dict.fromkeys(chars))
        shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in self.chars)
        super().__init__(
            f"cannot pronounce character(s) {shown} in {lang} text {text!r}; "
            "remove or transliterate them before tokenizing"
        )


class MissingDependencyError(ImportError):
    """An optional G2P package or system program that is not installed."""
