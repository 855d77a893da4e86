"""Japanese G2P: OpenJTalk phonemes via pyopenjtalk (optional extra ``valle[ja]``).

Tokens are OpenJTalk phonemes (``k o N n i ch i w a``; ``N`` moraic nasal, ``cl`` geminate,
upper-case devoiced vowels ``U I``, ``pau`` an inner pause) plus punctuation from the shared set
(``、`` -> ``,``, ``。`` -> ``.``): the text is split at punctuation, each piece goes through
OpenJTalk and the punctuation is kept as tokens (``pyopenjtalk.g2p`` alone would drop it, and
with it the question intonation of ``？``).

With ``prosody=True`` pitch-accent marks are added from OpenJTalk's full-context labels
(the scheme of Kurihara et al., "Prosodic features control by symbols as input of
sequence-to-sequence acoustic modeling for neural TTS", 2021): ``↑`` pitch rise after the
mora, ``↓`` accent nucleus (pitch fall after the mora), ``#`` accent-phrase boundary.

Install: ``pip install pyopenjtalk-plus`` (ships the dictionary inside the wheel). The plain
``pyopenjtalk`` package downloads its dictionary on first use, which fails offline.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence
from typing import Any

from valle.text.errors import EmptyTextError, MissingDependencyError
from valle.text.normalize import basic_normalize
from valle.text.punctuation import PUNCTUATION

logger = logging.getLogger(__name__)

RISE = "↑"
FALL = "↓"
PHRASE_BOUNDARY = "#"
PAUSE = "pau"

_INSTALL_HINT = (
    "Japanese needs pyopenjtalk with a bundled dictionary: pip install pyopenjtalk-plus "
    "(or valle[ja]); the plain pyopenjtalk package downloads its dictionary on first use, "
    "which fails without network access"
)

_PUNCT_SPLIT = re.compile(f"([{re.escape(PUNCTUATION)}])")
# OpenJTalk phonemes that end a mora: accent marks go after them.
_MORA_END = frozenset({"a", "i", "u", "e", "o", "A", "I", "U", "E", "O", "N", "cl"})
_P3 = re.compile(r"-(.*?)\+")
_A = re.compile(r"/A:(-?\d+)\+(\d+)\+(\d+)/")
_F1 = re.compile(r"/F:(\d+)_")


def _load_pyopenjtalk() -> Any:
    try:
        import pyopenjtalk
    except ImportError as e:
        raise MissingDependencyError(_INSTALL_HINT) from e
    try:
        pyopenjtalk.g2p("あ")  # loads the dictionary now, not in the middle of a corpus
    except Exception as e:  # noqa: BLE001 - whatever the download/loading failure was
        raise MissingDependencyError(f"{_INSTALL_HINT} (loading failed: {e})") from e
    return pyopenjtalk


def prosody_tokens(labels: Sequence[str]) -> list[str]:
    """Phonemes with accent marks from OpenJTalk full-context labels (``sil`` dropped).

    Per phoneme with accent fields ``A:a1+a2+a3`` (a1: mora position relative to the accent
    nucleus, a2/a3: mora position from the start/end of the accent phrase) and ``F:f1``
    (moras in the accent phrase), after a mora-final phoneme:
    ``#`` if it ends the accent phrase and another one follows, ``↓`` if it is the nucleus
    and not phrase-final, ``↑`` if it is the first mora and pitch rises to the second.
    """
    tokens: list[str] = []
    for n, label in enumerate(labels):
        p3_match = _P3.search(label)
        if p3_match is None:
            raise ValueError(f"not an OpenJTalk full-context label: {label!r}")
        p3 = p3_match.group(1)
        if p3 == "sil":
            continue
        if p3 == "pau":
            tokens.append(PAUSE)
            continue
        tokens.append(p3)
        a = _A.search(label)
        f = _F1.search(label)
        if a is None or f is None or p3 not in _MORA_END or n + 1 >= len(labels):
            continue
        a1, a2, a3 = (int(x) for x in a.groups())
        f1 = int(f.group(1))
        nxt = labels[n + 1]
        nxt_p3_match = _P3.search(nxt)
        nxt_p3 = nxt_p3_match.group(1) if nxt_p3_match else ""
        nxt_a = _A.search(nxt)
        a2_next = int(nxt_a.group(2)) if nxt_a else -1
        if a3 == 1 and a2_next == 1 and nxt_p3 not in ("sil", "pau"):
            tokens.append(PHRASE_BOUNDARY)
        elif a1 == 0 and a2_next == a2 + 1 and a2 != f1:
            tokens.append(FALL)
        elif a2 == 1 and a2_next == 2:
            tokens.append(RISE)
    return tokens


class JapaneseFrontend:
    """Japanese text -> OpenJTalk phoneme tokens (optionally with pitch-accent marks).

    Raises :class:`MissingDependencyError` at construction when pyopenjtalk (with its
    dictionary) is not available.
    """

    language = "ja"

    def __init__(self, prosody: bool = False) -> None:
        self.prosody = prosody
        self._ojt = _load_pyopenjtalk()

    def _phonemes(self, piece: str) -> list[str]:
        if self.prosody:
            return prosody_tokens(self._ojt.extract_fullcontext(piece))
        return self._ojt.g2p(piece).split()

    def __call__(self, text: str, punctuation: Collection[str] | None = None) -> list[str]:
        normalized = basic_normalize(text, punctuation)
        tokens: list[str] = []
        pronounced = False
        for piece in _PUNCT_SPLIT.split(normalized):
            if not piece:
                continue
            if piece in PUNCTUATION:
                tokens.append(piece)
                continue
            if not piece.strip():
                continue
            phones = self._phonemes(piece)
            pronounced = pronounced or any(p != PAUSE for p in phones)
            tokens.extend(phones)
        if not pronounced:
            raise EmptyTextError(f"Japanese text {text!r} has nothing pronounceable in it")
        return tokens

    def batch(
        self, texts: Sequence[str], punctuation: Collection[str] | None = None
    ) -> list[list[str]]:
        """Tokenize many texts (same as calling the front end on each)."""
        return [self(t, punctuation) for t in texts]

    def __reduce__(self) -> tuple[type, tuple[bool]]:
        return (JapaneseFrontend, (self.prosody,))  # re-load pyopenjtalk when unpickled

    def __repr__(self) -> str:
        return f"JapaneseFrontend(prosody={self.prosody})"
