import re

import pytest

from valle.text import EmptyTextError, UnsupportedCharactersError, tokenize_text
from valle.text.chinese_numbers import read_cardinal, verbalize_numbers
from valle.text.mandarin import MandarinFrontend

INITIALS = set("b p m f d t n l g k h j q x zh ch sh r z c s".split())
FINAL = re.compile(r"^[a-z]+[1-5]$")


def test_initials_and_tone_numbered_finals():
    tokens = tokenize_text("今天天气很好，我们出去玩吧。", "zh")
    body = [t for t in tokens if t not in ",."]
    assert all(t in INITIALS or FINAL.match(t) for t in body), body
    finals = [t for t in body if FINAL.match(t)]
    assert len(finals) == 12  # one tone-numbered final per Han character
    assert tokens[-1] == "." and "," in tokens
    assert "b" in tokens and "a5" in tokens  # 吧: neutral tone written as 5


def test_known_transcription_without_sandhi():
    frontend = MandarinFrontend(tone_sandhi=False)
    assert frontend("你好") == ["n", "i3", "h", "ao3"]
    assert frontend("有鱼") == ["iou3", "v2"]  # zero initials, strict pinyin finals


def test_third_tone_sandhi_by_default():
    assert tokenize_text("你好", "zh") == ["n", "i2", "h", "ao3"]


def test_chinese_punctuation_maps_to_shared_tokens():
    tokens = tokenize_text("《三体》、好！对？是；嗯：……", "zh")
    assert [t for t in tokens if not FINAL.match(t) and t not in INITIALS] == [
        '"', '"', ",", "!", "?", ";", ":", "…",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "n, reading",
    [(0, "零"), (10, "十"), (15, "十五"), (105, "一百零五"), (110, "一百一十"),
     (1005, "一千零五"), (10086, "一万零八十六"), (100000, "十万"), (100010000, "一亿零一万")],
)  # fmt: skip
def test_cardinals(n, reading):
    assert read_cardinal(n) == reading


def test_number_rules():
    assert verbalize_numbers("2024年") == "二零二四年"
    assert verbalize_numbers("2024个") == "二千零二十四个"
    assert verbalize_numbers("3.14") == "三点一四"
    assert verbalize_numbers("12.5%") == "百分之十二点五"
    assert verbalize_numbers("007") == "零零七"
    assert verbalize_numbers("1,500元") == "一千五百元"


def test_digits_are_read_as_mandarin():
    assert tokenize_text("我有3个", "zh") == tokenize_text("我有三个", "zh")
    # a full-width comma between numbers is punctuation, not a thousands separator
    assert tokenize_text("100，200", "zh") == tokenize_text("一百，二百", "zh")


def test_latin_letters_use_the_english_frontend():
    tokens = tokenize_text("我爱Python", "zh")
    assert tokens[:4] == ["uo3", "ai4"] + tokenize_text("Python", "en")[:2]
    assert tokens[2:] == tokenize_text("Python", "en")


def test_unsupported_characters_are_named():
    with pytest.raises(UnsupportedCharactersError, match="U\\+041F") as info:
        tokenize_text("Привет你好", "zh")
    assert "П" in info.value.chars and isinstance(info.value, ValueError)


def test_han_character_without_a_reading_is_named():
    # 桛 is a Japanese-made kanji with no Mandarin reading; it must not become a token
    with pytest.raises(UnsupportedCharactersError, match="桛"):
        tokenize_text("你好桛", "zh")


def test_syllabic_nasal_interjections():
    assert tokenize_text("嗯", "zh") == ["n2"]


def test_nothing_pronounceable():
    with pytest.raises(EmptyTextError):
        tokenize_text("。。。", "zh")
