"""The mini corpus's Mandarin and Japanese (VALL-E X, issue 10): several voices, whole voices
held out, training text from fortunes-zh and the Japanese templates, none of it heard by the
held-out voices."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import pytest

from valle.data.mini.chinese_sentences import (
    CHINESE_FORTUNE_FILES,
    FORTUNE_DIR,
    chinese_sentences,
    split_chinese_sentences,
)
from valle.data.mini.japanese_sentences import japanese_sentences
from valle.data.mini.voices import MINI_TEST_SPEAKERS, VOICES, plan_corpus

needs_fortunes_zh = pytest.mark.skipif(
    any(not (FORTUNE_DIR / f).is_file() for f in CHINESE_FORTUNE_FILES),
    reason="Debian's fortunes-zh is not installed (tools/setup.sh installs it)",
)


def test_split_chinese_sentences_keeps_clean_han_sentences() -> None:
    record = "「要有礼貌」，请接受这一事实；并保持礼貌。在 Debian 项目中很难避免。好。春眠不觉晓，处处闻啼鸟！"
    assert split_chinese_sentences(record) == [
        "要有礼貌，请接受这一事实，并保持礼貌。",
        "春眠不觉晓，处处闻啼鸟！",
    ]  # Latin letters and too-short sentences dropped


@needs_fortunes_zh
def test_chinese_sentences_from_fortunes_zh() -> None:
    out = chinese_sentences()
    assert len(out) >= 5000 and len(set(out)) == len(out)
    assert all(not any(c.isascii() for c in s) for s in out[:2000])


def test_chinese_sentences_say_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fortunes-zh"):
        chinese_sentences(tmp_path)


def test_japanese_sentences_are_kana_distinct_and_deterministic() -> None:
    out = japanese_sentences(500, seed=3)
    assert len(set(out)) == 500 and out == japanese_sentences(500, seed=3)
    assert out != japanese_sentences(500, seed=4)
    for s in out:
        assert s.endswith("。")
        assert all("\u3040" <= c <= "\u30ff" or c in " 。" for c in s), (
            s
        )  # espeak-ng's ja voice reads kana only
    with pytest.raises(ValueError):
        japanese_sentences(0)


@needs_fortunes_zh
def test_plan_gives_each_language_several_voices_and_held_out_speakers() -> None:
    plan = plan_corpus()
    for language, prefix in (("zh", "zhf"), ("ja", "jat")):
        voices = [v for v in VOICES if v.language == language]
        test = {v.speaker for v in voices if v.speaker in MINI_TEST_SPEAKERS}
        train = {v.speaker for v in voices} - test
        assert len(train) >= 5 and len(test) >= 2
        utts = [u for u in plan if u.voice.language == language]
        per_speaker = collections.Counter(u.voice.speaker for u in utts)
        assert set(per_speaker) == train | test
        # ~3-4 s per utterance: at least 20 minutes per language in the full corpus
        assert len(utts) * 3.3 >= 20 * 60
        train_texts = {u.sentence_id for u in utts if u.voice.speaker in train}
        test_texts = {u.sentence_id for u in utts if u.voice.speaker in test}
        assert all(t.startswith(prefix) for t in train_texts)
        assert not train_texts & test_texts  # no test text heard in training
        assert len(train_texts) >= 300  # the training voices read different texts
    # whole speakers held out: a held-out variant trains in no other language either
    variants = {v.name.split("+")[-1] for v in VOICES if v.speaker in MINI_TEST_SPEAKERS
                and v.language in ("zh", "ja")}  # fmt: skip
    other_train = {v.name.split("+")[-1] for v in VOICES if v.language in ("zh", "ja")
                   and v.speaker not in MINI_TEST_SPEAKERS}  # fmt: skip
    assert not variants & other_train


@needs_fortunes_zh
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is needed")
def test_a_small_multilingual_corpus_builds(tmp_path: Path) -> None:
    from valle.data.mini.corpus import make_mini_corpus
    from valle.data.mini_corpus import load_metadata

    voices = tuple(v for v in VOICES if v.speaker in ("espeak-cmn-m2", "espeak-ja-f4"))
    make_mini_corpus(tmp_path, num_jobs=1, scale=0.02, voices=voices)
    records = load_metadata(tmp_path)
    assert {r["language"] for r in records} == {"zh", "ja"}
    for r in records:
        assert r["phones"] and 1.0 < r["duration"] < 12.0
