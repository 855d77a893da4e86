"""Text front end: G2P per language, the phoneme symbol table and language ids.

    >>> from valle.text import tokenize_text, SymbolTable, language_id
    >>> tokens = tokenize_text("Hello, world!", "en")      # doctest: +SKIP
    >>> table = SymbolTable.build([tokens])                 # doctest: +SKIP
    >>> ids = table.encode(tokens)                          # doctest: +SKIP

Front ends: English (espeak-ng via phonemizer), Mandarin (pypinyin), Japanese (pyopenjtalk,
optional extra ``valle[ja]``). See each module for its token inventory. Code-switched text
(``[EN]...[EN][ZH]...[ZH]`` tags, or detection by script with ``language="auto"``) goes
through :func:`tokenize_multilingual`, which also gives each token's language id
(:mod:`valle.text.language_tags`).
"""

from valle.text.errors import (
    EmptyTextError,
    MissingDependencyError,
    SymbolTableFormatError,
    UnknownSymbolError,
    UnsupportedCharactersError,
    UnsupportedLanguageError,
)
from valle.text.frontend import TextFrontend, get_frontend, tokenize_text
from valle.text.language_tags import (
    AUTO,
    LanguageTagError,
    split_languages,
    tokenize_multilingual,
)
from valle.text.languages import LANGUAGES, language_id
from valle.text.punctuation import PUNCTUATION, WORD_BOUNDARY
from valle.text.symbol_table import SymbolTable

__all__ = [
    "AUTO",
    "LANGUAGES",
    "PUNCTUATION",
    "WORD_BOUNDARY",
    "EmptyTextError",
    "LanguageTagError",
    "MissingDependencyError",
    "SymbolTable",
    "SymbolTableFormatError",
    "TextFrontend",
    "UnknownSymbolError",
    "UnsupportedCharactersError",
    "UnsupportedLanguageError",
    "get_frontend",
    "language_id",
    "split_languages",
    "tokenize_multilingual",
    "tokenize_text",
]
