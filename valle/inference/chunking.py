"""Long-form synthesis: cut a phoneme sequence into chunks of bounded length.

An AR decoder's time and memory grow with its output (each step attends to every earlier
frame), and its output is bounded only by ``max_len_ratio`` x the text length: 3,000
characters in one go took 11.6 GB and 185 s on an AR that never stopped (issue #8.5). The
synthesizer therefore speaks long text as chunks of at most ``max_tokens`` target phonemes,
each continuing the same acoustic prompt, and joins the waves with short pauses.

A chunk ends at the strongest boundary that fits the budget, the latest one of that strength:

0. the end of a sentence (``.``, ``!``, ``?``, ``…``, with any closing quote or bracket);
1. the end of a clause (``,``, ``;``, ``:``, ``—``);
2. a word boundary (:data:`~valle.text.punctuation.WORD_BOUNDARY`);
3. anywhere (a single word longer than the budget, or a script without word boundaries
   such as Mandarin or Japanese with no punctuation for a long stretch).

Punctuation always stays with the words before it, word boundaries at a cut are dropped, and a
chunk holds at least one phoneme.
"""

from __future__ import annotations

from collections.abc import Sequence

from valle.text.punctuation import PUNCTUATION, WORD_BOUNDARY

__all__ = ["split_tokens"]

_SENTENCE = frozenset(".!?…")
_CLAUSE = frozenset(",;:—")
_HARD = 3


def _is_mark(token: str) -> bool:
    return token in PUNCTUATION


def _is_sound(token: str) -> bool:
    return token != WORD_BOUNDARY and not _is_mark(token)


def _strength(tokens: Sequence[str], p: int) -> int | None:
    """How good a cut between ``tokens[p - 1]`` and ``tokens[p]`` is (lower is better);
    None where a chunk may not start (at a punctuation mark)."""
    if _is_mark(tokens[p]):
        return None
    run: list[str] = []
    q = p - 1
    while q >= 0 and _is_mark(tokens[q]):  # the marks just before the cut
        run.append(tokens[q])
        q -= 1
    if _SENTENCE.intersection(run):
        return 0
    if _CLAUSE.intersection(run):
        return 1
    if tokens[p] == WORD_BOUNDARY or tokens[p - 1] == WORD_BOUNDARY:
        return 2
    return _HARD


def _strip(chunk: Sequence[str]) -> list[str]:
    lo, hi = 0, len(chunk)
    while lo < hi and chunk[lo] == WORD_BOUNDARY:
        lo += 1
    while hi > lo and chunk[hi - 1] == WORD_BOUNDARY:
        hi -= 1
    return list(chunk[lo:hi])


def split_tokens(tokens: Sequence[str], max_tokens: int) -> list[list[str]]:
    """Cut ``tokens`` into chunks of at most ``max_tokens`` (see the module docstring).

    A sequence within the budget comes back whole (one chunk, unchanged). A chunk may exceed
    the budget only by trailing marks that could not start a chunk of their own.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    tokens = list(tokens)
    if len(tokens) <= max_tokens:
        return [tokens]
    chunks: list[list[str]] = []
    start, n = 0, len(tokens)
    while n - start > max_tokens:
        best: tuple[int, int] | None = None  # (strength, -position)
        has_sound = False
        for p in range(start + 1, start + max_tokens + 1):
            has_sound = has_sound or _is_sound(tokens[p - 1])
            s = _strength(tokens, p) if has_sound else None
            if s is not None and (best is None or (s, -p) <= best):
                best = (s, -p)
        if best is None:  # no cut within the budget (a run of marks): take the first after it
            p = start + max_tokens + 1
            while p < n and (_strength(tokens, p) is None or not has_sound):
                has_sound = has_sound or _is_sound(tokens[p - 1])
                p += 1
            if p >= n:
                break
            best = (_HARD, -p)
        cut = -best[1]
        chunks.append(_strip(tokens[start:cut]))
        start = cut
    rest = _strip(tokens[start:])
    if any(_is_sound(t) for t in rest) or not chunks:
        chunks.append(rest)
    elif rest:  # only marks left: they end the last chunk
        chunks[-1].extend(rest)
    return [c for c in chunks if c]
