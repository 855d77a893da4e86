import pytest

from valle.text import PUNCTUATION, WORD_BOUNDARY, tokenize_text
from valle.text.normalize import collapse_whitespace, normalize_english

VOWEL_CHARS = set("aeiouæɑɒɔəɚɛɜɝɪʊʌᵻ")


def words(tokens):
    out, cur = [], []
    for t in tokens:
        if t == WORD_BOUNDARY:
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    return out + [cur]


@pytest.mark.parametrize(
    "text, n_words",
    [
        ("The quick brown fox jumps over the lazy dog.", 9),
        ("Hello, world!", 2),
        ("She sells seashells by the seashore", 6),
    ],
)
def test_phones_words_and_stress(text, n_words):
    tokens = tokenize_text(text, "en")
    assert len(words(tokens)) == n_words
    assert any("ˈ" in t for t in tokens), "primary stress marks must be kept"
    # stress marks are attached to a vowel, never tokens of their own
    assert all(t not in ("ˈ", "ˌ") for t in tokens)
    assert all(t[0] not in "ˈˌ" or set(t[1:]) & VOWEL_CHARS for t in tokens)
    assert tokens[0] != WORD_BOUNDARY and tokens[-1] != WORD_BOUNDARY


def test_known_transcription():
    assert tokenize_text("Hello, world!", "en") == [
        "h", "ə", "l", "ˈoʊ", ",", WORD_BOUNDARY, "w", "ˈɜː", "l", "d", "!",
    ]  # fmt: skip


def test_punctuation_kept_as_separate_tokens():
    tokens = tokenize_text('Wait... "really"? Yes; no: maybe (later) - ok!', "en")
    for mark in ["…", '"', "?", ";", ":", "(", ")", "!"]:
        assert mark in tokens, mark
    assert all(len(t) == 1 for t in tokens if set(t) & set(PUNCTUATION))


def test_digits_read_as_words():
    def phones(text):  # espeak sometimes joins number words ("fivehundred"): ignore boundaries
        return [t for t in tokenize_text(text, "en") if t != WORD_BOUNDARY]

    assert phones("I have 23 apples") == phones("I have twenty three apples")
    assert phones("1,500") == phones("one thousand five hundred")
    assert phones("the 3rd day") == phones("the third day")
    assert not any(ch.isdigit() for t in tokenize_text("In 1999 and 2024", "en") for ch in t)


def test_currency_is_read_in_spoken_order():
    assert normalize_english("It is $5.50 now") == "It is 5 dollars 50 cents now"
    assert normalize_english("£1") == "1 pound"
    assert tokenize_text("$5", "en") == tokenize_text("five dollars", "en")


def test_whitespace_is_collapsed():
    assert collapse_whitespace("  a \n\t b  ") == "a b"
    assert tokenize_text("hello \n\n  world", "en") == tokenize_text("hello world", "en")


def test_batch_matches_single_calls():
    from valle.text import get_frontend

    frontend = get_frontend("en")
    texts = ["Good morning.", "It's 5 o'clock!", "Zero-shot speech synthesis"]
    assert frontend.batch(texts) == [frontend(t) for t in texts]
    with pytest.raises(ValueError, match="text 1"):
        frontend.batch(["fine", "  "])


def test_non_latin_letters_are_rejected_not_spelled_out():
    from valle.text import UnsupportedCharactersError

    with pytest.raises(UnsupportedCharactersError, match="U\\+4F60"):
        tokenize_text("hello 你好", "en")
    assert tokenize_text("naïve café", "en")  # Latin letters with diacritics are fine


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("It is 3.14 here.", "It is 3 point 1 4 here."),
        ("A 15.5 percent discount.", "A 15 point 5 percent discount."),
        ("Version 2.0.1 is out.", "Version 2 point 0 point 1 is out."),
        ("It costs $5.50.", "It costs 5 dollars 50 cents."),
        ("Room 4. Next.", "Room 4. Next."),
    ],
)
def test_decimals_are_spelled_out_and_tokenize(text, normalized):
    # with text after a decimal, the phonemizer split at its dot and espeak returned two
    # lines for one text ("espeak returned 2 lines for 1 texts"); the hard-sentence list
    # (num04) found it
    assert normalize_english(text) == normalized
    tokens = tokenize_text(text, "en")
    assert tokens[-1] == "." and tokens.count(WORD_BOUNDARY) == len(normalized.split()) - 1
