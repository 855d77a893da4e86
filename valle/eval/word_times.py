"""Word times from an aligner's phoneme durations, for prompt transcripts.

Shape legend: none (lists of tokens, words and seconds).

The test protocols (:mod:`valle.eval.protocols`) need to know which words of a transcript are
spoken inside the 3 s prompt window. Corpora with word alignments give it directly; without
them the protocol spread the words evenly over the utterance, which misplaces the prompt's last
word by one to three words on the mini corpus (pauses, long and short words). A cut of the
aligner stage (``prepare.sh --align true``) knows better: ``custom["durations"]`` gives the codec
frames of every token of ``supervision.custom["phonemes"]``. The tokens are the whole text's
phonemes, in which the front end joins some words (espeak writes "on the" as one word), so
tokens are matched back to words by phonemizing each word on its own and aligning the two
phoneme sequences (stress marks, word boundaries and punctuation left out): a word spans the
frames of its matched tokens; an unmatched token belongs to the word of the matched token before
it. Languages written without spaces (Chinese, Japanese) are left to the protocol's own rule.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

from valle.align.durations import DURATIONS_FIELD  # cut.custom: codec frames per token
from valle.data.tokenize import PHONEMES_FIELD  # supervision.custom: the text's tokens
from valle.text.punctuation import PUNCTUATION, WORD_BOUNDARY

__all__ = ["MIN_MATCHED", "word_spans", "word_times"]

MIN_MATCHED = 0.6  # fewer matched tokens than this share: the mapping is not trusted (None)
_STRESS = str.maketrans("", "", "ˈˌ")


def _core(token: str) -> str | None:
    """A token without stress marks; None for word boundaries and punctuation."""
    if token == WORD_BOUNDARY or token in PUNCTUATION:
        return None
    return token.translate(_STRESS) or None


def word_spans(
    words: Sequence[str],
    tokens: Sequence[str],
    durations: Sequence[int],
    word_tokens: Sequence[Sequence[str]],
) -> list[tuple[int, int]] | None:
    """(first frame, end frame) of each word, from the frames of the text's tokens.

    Args:
        words: the W words of the transcript.
        tokens: the text's L tokens (phonemes, word boundaries, punctuation).
        durations: (L,) frames per token.
        word_tokens: each word's own tokens (the front end on that word alone).
    Returns:
        W spans in frames (a word without a matched token gets the empty span where it would
        be), or None when fewer than :data:`MIN_MATCHED` of the phonemes match.
    """
    if len(tokens) != len(durations) or len(word_tokens) != len(words):
        raise ValueError(
            f"{len(tokens)} tokens with {len(durations)} durations, {len(words)} words with "
            f"{len(word_tokens)} token lists"
        )
    starts = [0]
    for d in durations:
        starts.append(starts[-1] + int(d))
    mine = [(i, c) for i, t in enumerate(tokens) if (c := _core(t)) is not None]
    theirs = [(w, c) for w, toks in enumerate(word_tokens) for t in toks if (c := _core(t))]
    if not mine or not theirs:
        return None
    matcher = difflib.SequenceMatcher(
        None, [c for _, c in mine], [c for _, c in theirs], autojunk=False
    )
    owner: dict[int, int] = {}  # token index -> word
    for a, b, n in matcher.get_matching_blocks():
        for k in range(n):
            owner[mine[a + k][0]] = theirs[b + k][0]
    if len(owner) < MIN_MATCHED * len(mine):
        return None
    word_of: list[int | None] = []  # each phoneme token's word: matched, else the one before
    last: int | None = None
    for i, _ in mine:
        last = owner.get(i, last)
        word_of.append(last)
    first = next((w for w in word_of if w is not None), 0)
    spans: list[list[int] | None] = [None] * len(words)
    for (i, _), w in zip(mine, word_of, strict=True):
        w = first if w is None else w
        s = spans[w]
        if s is None:
            spans[w] = [starts[i], starts[i + 1]]
        else:
            s[0], s[1] = min(s[0], starts[i]), max(s[1], starts[i + 1])
    out: list[tuple[int, int]] = []
    for w, s in enumerate(spans):
        if s is None:  # no phoneme of its own: an empty span after the previous word
            at = out[-1][1] if out else next((x[0] for x in spans[w:] if x is not None), 0)
            out.append((at, at))
        else:
            out.append((s[0], s[1]))
    return out


def word_times(
    cut: Any, sup: Any, tokenize: Callable[[list[str], str], list[list[str]]] | None = None
) -> list[tuple[str, float, float]] | None:
    """``(word, start, end)`` in seconds from the cut start for every word of ``sup.text``,
    from the cut's aligner durations (a word spans its own phonemes; pauses and punctuation
    lie between words); None without durations and phonemes, for a language written without
    spaces, or when the tokens cannot be matched to the words. ``tokenize(words, language)``:
    each word's tokens (default: the language's front end)."""
    from valle.eval.normalize import is_character_language

    durations = (getattr(cut, "custom", None) or {}).get(DURATIONS_FIELD)
    tokens = (sup.custom or {}).get(PHONEMES_FIELD)
    if not durations or not tokens or len(durations) != len(tokens):
        return None
    language = sup.language or "en"
    words = sup.text.split()
    if not words or is_character_language(language):
        return None
    spans = word_spans(words, tokens, durations, (tokenize or _front_end)(words, language))
    total = sum(int(d) for d in durations)
    if spans is None or total <= 0:
        return None
    seconds = cut.duration / total  # the durations cover the cut's codec frames
    return [(w, a * seconds, b * seconds) for w, (a, b) in zip(words, spans, strict=True)]


def _front_end(words: list[str], language: str) -> list[list[str]]:
    """Each word's tokens; a word with nothing to say (a dash) gets none."""
    from valle.text import tokenize_text
    from valle.text.frontend import get_frontend

    batch = getattr(get_frontend(language), "batch", None)
    if batch is not None:
        try:  # one espeak call for all the words
            return [list(t) for t in batch(list(words))]
        except ValueError:  # a word with nothing pronounceable: one at a time
            pass
    out = []
    for w in words:
        try:
            out.append(tokenize_text(w, language))
        except ValueError:
            out.append([])
    return out
