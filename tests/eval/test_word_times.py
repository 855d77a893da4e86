"""Word times from the aligner's token durations (valle.eval.word_times) and the protocol's use
of them for prompt transcripts."""

from __future__ import annotations

import pytest

from valle.eval.word_times import word_spans, word_times

# "on the" is one espeak word (no boundary between them); each word alone has its own stress
WORDS = ["Sat", "on", "the", "bank."]
TOKENS = ["s", "ˈæ", "t", "_", "ɔ", "n", "ð", "ə", "_", "b", "ˈæ", "ŋ", "k", "."]
DURATIONS = [3, 4, 2, 1, 2, 2, 1, 3, 5, 2, 4, 3, 2, 1]  # 35 frames
WORD_TOKENS = [["s", "ˈæ", "t"], ["ˈɔ", "n"], ["ð", "ˈə"], ["b", "ˈæ", "ŋ", "k", "."]]


def test_spans_follow_the_tokens_of_joined_words() -> None:
    spans = word_spans(WORDS, TOKENS, DURATIONS, WORD_TOKENS)
    # Sat: frames 0-9; on: 10-14 (after the boundary's frame 9); the: 14-18; bank: 23-34
    # (the boundary's 5 frames belong to no word, the final "." to none either)
    assert spans == [(0, 9), (10, 14), (14, 18), (23, 34)]


def test_an_unmatched_phoneme_joins_the_word_before_it() -> None:
    theirs = [["s", "ˈæ", "t"], ["ɔ", "n"], ["ð", "ə"], ["b", "ɑ", "ŋ", "k"]]  # "bank" as "bɑŋk"
    spans = word_spans(WORDS, TOKENS, DURATIONS, theirs)
    assert spans is not None and spans[3] == (23, 34)
    assert spans[:3] == [(0, 9), (10, 14), (14, 18)]


def test_a_word_without_phonemes_gets_an_empty_span_in_place() -> None:
    words = ["Sat", "-", "on", "the", "bank."]
    spans = word_spans(words, TOKENS, DURATIONS, [WORD_TOKENS[0], [], *WORD_TOKENS[1:]])
    assert spans == [(0, 9), (9, 9), (10, 14), (14, 18), (23, 34)]


def test_tokens_of_another_text_are_not_trusted() -> None:
    other = [["k", "ʌ", "m"], ["h", "ɪ", "ɹ"], ["n", "aʊ"], ["p", "l", "iː", "z"]]
    assert word_spans(WORDS, TOKENS, DURATIONS, other) is None
    with pytest.raises(ValueError, match="durations"):
        word_spans(WORDS, TOKENS, DURATIONS[:-1], WORD_TOKENS)


class _Sup:
    def __init__(self, text: str, language: str, tokens: list[str]) -> None:
        self.text, self.language, self.custom, self.alignment = text, language, {}, None
        self.custom["phonemes"] = tokens


class _Cut:
    def __init__(self, durations: list[int] | None, seconds: float) -> None:
        self.custom = {} if durations is None else {"durations": durations}
        self.duration, self.start = seconds, 0.0


def _given(words: list[str], language: str) -> list[list[str]]:
    assert language == "en"
    return [WORD_TOKENS[WORDS.index(w)] for w in words]


def test_word_times_in_seconds_and_when_there_are_none() -> None:
    sup = _Sup(" ".join(WORDS), "en", TOKENS)
    got = word_times(_Cut(DURATIONS, 3.5), sup, _given)  # 35 frames over 3.5 s
    assert got is not None and [w for w, _, _ in got] == WORDS
    # each word spans its own phonemes; the pauses (boundaries, punctuation) lie between
    assert [(round(a, 6), round(b, 6)) for _, a, b in got] == [
        (0.0, 0.9), (1.0, 1.4), (1.4, 1.8), (2.3, 3.4)]  # fmt: skip
    assert word_times(_Cut(None, 3.5), sup, _given) is None  # no durations
    assert word_times(_Cut(DURATIONS[:-1], 3.5), sup, _given) is None  # not one per token
    assert word_times(_Cut([2, 2], 1.0), _Sup("你好", "zh", ["n", "i"]), _given) is None


def test_the_protocol_places_prompt_words_by_the_durations() -> None:
    """A word whose frames' midpoint is inside the window is the prompt's; the proportional
    split (words spread evenly) would have put "bank." at 3.06 s, outside a 3 s window."""
    from lhotse import MonoCut, SupervisionSegment

    sup = SupervisionSegment(id="u", recording_id="u", start=0.0, duration=3.5,
                             text=" ".join(WORDS), language="en",
                             custom={"phonemes": TOKENS})  # fmt: skip
    cut = MonoCut(id="u", start=0.0, duration=3.5, channel=0, supervisions=[sup],
                  custom={"durations": DURATIONS})  # fmt: skip
    from valle.eval.protocols import words_in_window

    inside, after, source = words_in_window(cut, 0.0, 1.4)
    assert source == "durations" and inside == "Sat on" and after == "the bank."
    inside, after, _ = words_in_window(cut, 0.0, 3.0)
    assert inside == "Sat on the bank." and after == ""
