"""Real-world punctuation and emoji before G2P (issue #8.4): fitted to the marks a model
knows, soundless marks and emoji dropped, nothing read out by name."""

import logging

import pytest

from valle.text import tokenize_text
from valle.text.punctuation import (
    PUNCTUATION,
    clean_punctuation,
    fit_punctuation,
    fold_punctuation,
)

KNOWN = set(",.!?;:")  # the marks of a typical training table (egs/mini has exactly these)


@pytest.mark.parametrize(
    "text, want",
    [
        ("a — b", "a, b"),
        ("a—b", "a, b"),
        ("It was (sort of) fine.", "It was, sort of, fine."),
        ("(Later) we left.", "Later, we left."),
        ('He said "hi" to me.', "He said hi to me."),
        ('He said, "hi."', "He said, hi."),
        ("Wait… what?", "Wait, what?"),
        ("And then…", "And then."),
        ("¿Qué? ¡Sí!", "Qué? Sí!"),
        ("Stop (now)", "Stop, now"),
        ("Fine, thanks.", "Fine, thanks."),  # known marks untouched
    ],
)
def test_unknown_marks_become_known_pauses_or_go(text, want):
    assert fit_punctuation(text, KNOWN) == want


def test_fallback_follows_the_chain_to_what_the_table_has():
    assert fit_punctuation("Go… now!", {","}) == "Go, now,"
    assert fit_punctuation("Go now!", {"."}) == "Go now."
    assert fit_punctuation("Go; now.", set()) == "Go now"


def test_every_canonical_mark_is_handled():
    text = " x ".join(PUNCTUATION) + " end"
    out = fit_punctuation(text, KNOWN)
    assert not set(out) & (set(PUNCTUATION) - KNOWN)


def test_cjk_text_gets_no_spaces():
    assert fit_punctuation(fold_punctuation("《三体》好"), KNOWN) == "三体好"
    assert fit_punctuation("三体(好)", KNOWN) == "三体,好"


@pytest.mark.parametrize(
    "text",
    [
        "He said “hi” — then left…",
        'She paused... "Really?" (she asked) *twice* – ‘yes’.',
        "Prices (in dollars): 5 – 10 « approx »",
    ],
)
def test_real_text_tokenizes_within_the_known_marks(text):
    tokens = tokenize_text(text, "en", punctuation=KNOWN)
    assert not {t for t in tokens if set(t) & set(PUNCTUATION)} - KNOWN


def test_asterisks_are_not_read_out():
    plain = tokenize_text("Hello world again", "en")
    assert tokenize_text("Hello *world* again", "en") == plain
    assert tokenize_text("Hello *world* again", "zh") == tokenize_text("Hello world again", "zh")


def test_emoji_are_dropped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="valle.text"):
        tokens = tokenize_text("I love it 😀👍🏽 so much", "en")
    assert tokens == tokenize_text("I love it so much", "en")  # not "grinning face"
    assert "emoji" in caplog.text and "😀" in caplog.text
    assert tokenize_text("好😀", "zh") == tokenize_text("好", "zh")  # no UnsupportedCharacters


def test_changes_are_logged_at_debug_level(caplog):
    with caplog.at_level(logging.DEBUG, logger="valle.text.punctuation"):
        assert clean_punctuation("a *b* — c", KNOWN).split() == ["a", "b,", "c"]
    assert "punctuation normalised" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="valle.text.punctuation"):
        clean_punctuation("a, b.", KNOWN)
    assert not caplog.text


def test_corpus_tokenization_keeps_the_canonical_marks():
    tokens = tokenize_text('Wait... "really"? (later) — ok!', "en")
    for mark in ["…", '"', "?", "(", ")", "—", "!"]:
        assert mark in tokens, mark


def test_text_of_only_emoji_or_marks_says_so():
    from valle.text import EmptyTextError

    with pytest.raises(EmptyTextError, match=r"the text \('😀 \*'\) is empty after normalisation"):
        tokenize_text("😀 *", "en")


def test_a_dash_between_numbers_is_read_as_to():
    from valle.text.normalize import normalize_english

    assert normalize_english("pages 5–10 and 3 — 4", KNOWN) == "pages 5 to 10 and 3 to 4"
    assert normalize_english("call 555-1234") == "call 555-1234"  # a hyphen is not a range
