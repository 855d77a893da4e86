"""Language tags, script-based detection and phonemes with a language per token."""

from __future__ import annotations

import importlib.util

import pytest

from valle.text import LANGUAGES, tokenize_text
from valle.text.errors import EmptyTextError, UnsupportedCharactersError, UnsupportedLanguageError
from valle.text.language_tags import (
    LanguageSegment,
    LanguageTagError,
    detect_language_segments,
    dominant_language,
    has_language_tags,
    parse_language_tags,
    split_languages,
    tokenize_multilingual,
)

EN, ZH, JA = LANGUAGES["en"], LANGUAGES["zh"], LANGUAGES["ja"]
needs_ja = pytest.mark.skipif(
    importlib.util.find_spec("pyopenjtalk") is None, reason="Japanese G2P needs pyopenjtalk"
)


def _pairs(segments: list[LanguageSegment]) -> list[tuple[str, str | None]]:
    return [(s.text, s.language) for s in segments]


# --------------------------------------------------------------------------- tags


def test_tags_split_a_code_switched_text() -> None:
    text = "[EN]Hello,[EN][ZH]你好。[ZH] [JA]こんにちは。[JA]"
    assert has_language_tags(text) and not has_language_tags("plain [text]")
    assert _pairs(parse_language_tags(text)) == [
        ("Hello,", "en"),
        ("你好。", "zh"),
        ("こんにちは。", "ja"),
    ]


def test_untagged_stretches_and_lower_case_tags() -> None:
    assert _pairs(parse_language_tags("before [zh]中文[ZH] after")) == [
        ("before ", None),
        ("中文", "zh"),
        (" after", None),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "[EN]a [ZH]b[ZH] c[EN]",
            r"\[ZH\] at column 7 is inside the \[EN\] segment opened at column 1",
        ),
        ("[EN]abc", r"\[EN\] at column 1 is never closed"),
        ("[EN]a[EN] b [EN]c", r"\[EN\] at column 13 is never closed"),
        ("[FR]bonjour[FR]", r"unknown language tag \[FR\].*\[EN\] \[ZH\] \[JA\]"),
    ],
)
def test_malformed_tags_raise_clear_errors(text: str, match: str) -> None:
    with pytest.raises(LanguageTagError, match=match):
        parse_language_tags(text)


def test_only_tags_is_empty_text() -> None:
    with pytest.raises(EmptyTextError):
        split_languages("[EN] [EN]")


# --------------------------------------------------------------------------- detection


def test_detection_by_script_on_mixed_strings() -> None:
    got = detect_language_segments("我在Tokyo工作。東京は大きいです。Hello world 123.")
    assert _pairs(got) == [
        ("我在", "zh"),
        ("Tokyo", "en"),
        ("工作。", "zh"),
        ("東京は大きいです。", "ja"),  # Han with kana in its sentence: Japanese
        ("Hello world 123.", "en"),  # digits and punctuation join the run they follow
    ]
    assert "".join(s.text for s in got) == "我在Tokyo工作。東京は大きいです。Hello world 123."


def test_han_alone_is_mandarin_kana_alone_is_japanese() -> None:
    assert _pairs(detect_language_segments("漢字")) == [("漢字", "zh")]
    assert _pairs(detect_language_segments("カタカナ")) == [("カタカナ", "ja")]
    assert _pairs(detect_language_segments("  12, ok")) == [("  12, ok", "en")]  # leading neutral
    assert _pairs(detect_language_segments("123")) == [("123", "en")]  # no letter: fallback
    assert _pairs(detect_language_segments("123", fallback="zh")) == [("123", "zh")]


def test_detection_refuses_other_scripts() -> None:
    with pytest.raises(UnsupportedCharactersError, match="П"):
        detect_language_segments("Привет")


def test_split_languages_tags_win_and_a_given_language_skips_detection() -> None:
    assert _pairs(split_languages("[JA]漢字[JA]中文")) == [("漢字", "ja"), ("中文", "zh")]
    assert _pairs(split_languages("我用iPhone", "zh")) == [("我用iPhone", "zh")]
    assert _pairs(split_languages("我用iPhone", "auto")) == [("我用", "zh"), ("iPhone", "en")]
    # neighbouring segments of one language merge
    assert _pairs(split_languages("[EN]a [EN]b")) == [("a b", "en")]
    with pytest.raises(UnsupportedLanguageError):
        split_languages("hello", "fr")


# --------------------------------------------------------------------------- tokens


def test_language_ids_per_token_follow_the_segments() -> None:
    tokens, ids = tokenize_multilingual("[EN]Hello.[EN][ZH]你好。[ZH]")
    en = tokenize_text("Hello.", "en")
    zh = tokenize_text("你好。", "zh")
    assert tokens == en + zh
    assert ids == [EN] * len(en) + [ZH] * len(zh)


@needs_ja
def test_auto_detected_code_switching_gives_three_languages() -> None:
    tokens, ids = tokenize_multilingual("我用iPhone。今日は晴れです。")
    assert len(tokens) == len(ids)
    runs = [ids[0]] + [b for a, b in zip(ids, ids[1:], strict=False) if a != b]
    assert runs == [ZH, EN, JA]  # 我用 / iPhone。(the mark joins the run it follows) / 今日は...


def test_a_given_language_keeps_the_monolingual_front_end() -> None:
    tokens, ids = tokenize_multilingual("Hello world", "en")
    assert tokens == tokenize_text("Hello world", "en") and set(ids) == {EN}


def test_dominant_language() -> None:
    assert dominant_language([EN, ZH, ZH, EN, ZH]) == ZH
    assert dominant_language([JA, EN]) == JA  # a tie: the first
    with pytest.raises(ValueError):
        dominant_language([])
