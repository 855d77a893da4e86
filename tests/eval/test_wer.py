"""Normalisation and WER/CER counts on pairs checked by hand."""

from __future__ import annotations

import pytest

from valle.eval.normalize import (
    CharacterNormalizer,
    EnglishNormalizer,
    expand_numbers,
    normalizer_for,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)
from valle.eval.wer import score_corpus

norm = EnglishNormalizer()


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety nine"),
        (105, "one hundred five"),
        (1000, "one thousand"),
        (1_234_567, "one million two hundred thirty four thousand five hundred sixty seven"),
        (-3, "minus three"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_ordinals_and_years():
    assert [ordinal_to_words(n) for n in (1, 2, 3, 5, 12, 20, 21, 100)] == [
        "first",
        "second",
        "third",
        "fifth",
        "twelfth",
        "twentieth",
        "twenty first",
        "one hundredth",
    ]
    assert year_to_words(1990) == "nineteen ninety"
    assert year_to_words(1905) == "nineteen oh five"
    assert year_to_words(1800) == "eighteen hundred"
    assert year_to_words(2005) == "two thousand five"
    assert year_to_words(2024) == "twenty twenty four"


def test_expand_numbers_in_text():
    assert expand_numbers("$3.50") == "three dollars fifty cents"
    assert expand_numbers("50%") == "fifty percent"
    assert expand_numbers("the 3rd of 12,000") == "the third of twelve thousand"
    assert expand_numbers("pi is 3.14") == "pi is three point one four"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Hello, World!", "hello world"),
        ("HELLO WORLD", "hello world"),
        ("It's  the \u201cbest\u201d\tday.", "it's the best day"),
        ("'Quoted,' she said -- twice.", "quoted she said twice"),
        ("Mr. Brown paid $5 in 1990.", "mister brown paid five dollars in nineteen ninety"),
        ("one hundred and five", "one hundred five"),
        ("[noise] well (laughs) caf\u00e9 rock-and-roll", "well cafe rock and roll"),
        ("I have 2 cats", "i have two cats"),
    ],
)
def test_english_normalizer(raw, expected):
    assert norm(raw) == expected


def test_digits_and_words_normalise_to_the_same_text():
    assert norm("In 1990 he had 105 books.") == norm(
        "in nineteen ninety he had one hundred and five books"
    )


def test_wer_counts_by_hand():
    # ref: "the cat sat on the mat" (6 words); hyp: "the bat sat on mat" -> S=1 (cat/bat), D=1.
    # ref: "hello world" (2); hyp: "hello big world" -> I=1.
    # ref: "a b c" (3); hyp: "" -> D=3.
    res = score_corpus(
        ["u1", "u2", "u3"],
        ["The cat sat on the mat.", "Hello, world!", "a b c"],
        ["the bat sat on mat", "hello big world", ""],
    )
    counts = [(r.substitutions, r.deletions, r.insertions, r.hits) for r in res.rows]
    assert counts == [(1, 1, 0, 4), (0, 0, 1, 2), (0, 3, 0, 0)]
    assert res.ref_len == 11 and res.errors == 6
    # Corpus WER is 6/11, not the mean of per-utterance rates (2/6 + 1/2 + 3/3) / 3.
    assert res.error_rate == pytest.approx(6 / 11)
    assert res.error_rate != pytest.approx((2 / 6 + 1 / 2 + 1.0) / 3)
    assert res.metric == "WER"


def test_numbers_do_not_count_as_errors_after_normalisation():
    res = score_corpus(["x"], ["He was born in nineteen ninety."], ["He was born in 1990"])
    assert res.errors == 0


def test_cer_for_mandarin_and_japanese():
    # 你好世界 vs 你们好世: one insertion (们) and one deletion (界); punctuation/space ignored.
    res = score_corpus(["z"], ["你好，世界！"], ["你们好 世"], language="zh")
    assert res.metric == "CER" and res.unit == "char"
    r = res.rows[0]
    assert (r.substitutions, r.deletions, r.insertions, r.hits) == (0, 1, 1, 3)
    assert res.error_rate == pytest.approx(2 / 4)
    # Japanese: full-width punctuation stripped; に→ば and ち→ん are two substitutions in five characters.
    res = score_corpus(["j"], ["こんにちは。"], ["こんばんは"], language="ja")
    assert (res.rows[0].substitutions, res.ref_len) == (2, 5)
    assert isinstance(normalizer_for("ja"), CharacterNormalizer)


def test_corpus_rows_csv(tmp_path):
    res = score_corpus(["a", "b"], ["one two", "three"], ["one", "three four"])
    path = res.write_csv(tmp_path / "rows.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("id,reference,hypothesis,substitutions,deletions,insertions,hits")
    assert lines[1].startswith("a,one two,one,0,1,0,1")
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        score_corpus(["a"], ["x", "y"], ["x"])
    with pytest.raises(ValueError, match="unique"):
        score_corpus(["a", "a"], ["x", "y"], ["x", "y"])
    with pytest.raises(ValueError, match="empty"):
        _ = score_corpus(["a"], ["..."], ["x"]).error_rate
