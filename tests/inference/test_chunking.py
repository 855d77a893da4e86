"""Long-form text is cut into bounded chunks at the strongest boundary that fits (#8.5)."""

from __future__ import annotations

import random

import pytest

from valle.inference.chunking import split_tokens
from valle.text.punctuation import WORD_BOUNDARY

_ = WORD_BOUNDARY


def sentence(*words: str, end: str = ".") -> list[str]:
    out: list[str] = []
    for w in words:
        if out:
            out.append(_)
        out.extend(w)
    return out + [end]


def join(chunks: list[list[str]]) -> list[str]:
    out: list[str] = []
    for c in chunks:
        if out:
            out.append(_)
        out.extend(c)
    return out


def test_short_text_is_one_unchanged_chunk() -> None:
    tokens = sentence("ab", "cd")
    assert split_tokens(tokens, 100) == [tokens]


def test_cuts_at_sentence_ends_and_packs_sentences() -> None:
    s1, s2, s3 = sentence("abc", "de"), sentence("fgh", "ij", end="?"), sentence("kl", "mno")
    tokens = s1 + [_] + s2 + [_] + s3
    assert split_tokens(tokens, len(s1) + 1 + len(s2)) == [s1 + [_] + s2, s3]
    assert split_tokens(tokens, len(s1) + 3) == [s1, s2, s3]


def test_then_clauses_then_words_then_anywhere() -> None:
    clause = ["a", "b", ",", _, "c", "d", _, "e", "f", "."]
    assert split_tokens(clause, 5) == [["a", "b", ","], ["c", "d"], ["e", "f", "."]]
    assert split_tokens(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]


def test_closing_marks_stay_with_their_sentence() -> None:
    tokens = ['"', "a", "b", ".", '"', _, "c", "d", "."]
    assert split_tokens(tokens, 6) == [['"', "a", "b", ".", '"'], ["c", "d", "."]]


def test_mandarin_like_tokens_cut_at_punctuation() -> None:
    tokens = ["n", "i3", "h", "ao3", ",", "uo3", "h", "ao3", ".", "t", "a1"]
    assert split_tokens(tokens, 5) == [["n", "i3", "h", "ao3", ","], ["uo3", "h", "ao3", "."],
                                       ["t", "a1"]]  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_random_sequences_keep_every_token_within_the_budget(seed: int) -> None:
    rng = random.Random(seed)
    tokens: list[str] = []
    for _w in range(rng.randint(1, 80)):  # words of 1-6 phones, 0-2 marks after each
        if tokens:
            tokens.append(_)
        tokens += rng.choices("abc", k=rng.randint(1, 6))
        tokens += rng.choices([",", ".", "?", "—", '"'], k=rng.choice([0, 0, 0, 1, 2]))
    budget = rng.randint(3, 40)
    chunks = split_tokens(tokens, budget)
    assert all(c and c[0] != _ and c[-1] != _ for c in chunks)
    assert all(any(t not in ',.?—"' + _ for t in c) for c in chunks)  # each has a sound
    marks = set(',.?—"')
    for c in chunks:  # over the budget only by trailing marks
        body = len(c)
        while body and c[body - 1] in marks:
            body -= 1
        assert body <= budget
    strip = [t for t in tokens if t != _]
    assert [t for t in join(chunks) if t != _] == strip  # nothing lost, nothing reordered


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        split_tokens(["a"], 0)
