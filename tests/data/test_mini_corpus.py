"""Tests of the offline mini corpus (valle.data.mini_corpus)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
from lhotse import CutSet

from valle.data.mini.engines import tidy_phones
from valle.data.mini.sentences import MAX_WORDS, MIN_WORDS, load_sentences, split_sentences
from valle.data.mini_corpus import (
    MINI_TEST_SPEAKERS,
    VOICES,
    load_metadata,
    make_mini_corpus,
    plan_corpus,
    prepare_mini_manifests,
    split_mini,
)

ENGINES = ("flite", "festival", "espeak-ng")
needs_engines = pytest.mark.skipif(
    any(shutil.which(e) is None for e in ENGINES), reason="flite, festival and espeak-ng are needed"
)


# ---------------------------------------------------------------- the plan (no audio)


def test_plan_has_enough_speakers_languages_and_sentences() -> None:
    plan = plan_corpus()
    speakers = {u.voice.speaker for u in plan}
    assert len(speakers) >= 8
    assert {u.voice.language for u in plan} == {"en", "zh", "ja"}
    # English: held-out test voices read the Alice sentences ("en0012-0013"), training voices
    # the fortunes sentences ("enf0012-0013"): no test text is heard in training.
    test_texts = {u.sentence_id for u in plan if u.voice.speaker in MINI_TEST_SPEAKERS}
    train_texts = {u.sentence_id for u in plan if u.voice.speaker not in MINI_TEST_SPEAKERS}
    en_test = {t for t in test_texts if t.startswith("en")}
    assert en_test and all(not t.startswith("enf") for t in en_test)
    en_train = {t for t in train_texts if t.startswith("enf")}
    assert len(en_train) >= 1500  # thousands of different training texts, not ~160
    assert not en_test & train_texts
    assert len({u.id for u in plan}) == len(plan)
    # Different voices read different (overlapping) subsets.
    subsets = {
        s: {u.sentence_id for u in plan if u.voice.speaker == s}
        for s in speakers
        if s.startswith(("flite", "festival"))
    }
    assert len({frozenset(v) for v in subsets.values()}) == len(subsets)
    a, b = subsets["flite-slt"], subsets["flite-rms"]
    assert a - b and b - a


def test_plan_scales_and_is_deterministic() -> None:
    full = plan_corpus(seed=0)
    small = plan_corpus(seed=0, scale=0.01)
    assert len({u.voice.speaker for u in small}) == len(VOICES)
    assert len(small) < len(full) / 20
    assert [u.id for u in plan_corpus(seed=0)] == [u.id for u in full]
    assert [u.id for u in plan_corpus(seed=1)] != [u.id for u in full]
    with pytest.raises(ValueError, match="scale"):
        plan_corpus(scale=0)


def test_test_speakers_are_real_and_unseen_people() -> None:
    by_speaker = {v.speaker: v for v in VOICES}
    assert set(MINI_TEST_SPEAKERS) <= set(by_speaker)
    train_sources = {v.source_speaker for v in VOICES if v.speaker not in MINI_TEST_SPEAKERS}
    english_test = [s for s in MINI_TEST_SPEAKERS if by_speaker[s].language == "en"]
    assert len(english_test) >= 2
    for s in english_test:
        assert by_speaker[s].engine in ("flite", "festival")  # intelligible voices only
        assert by_speaker[s].source_speaker not in train_sources
    for language in ("zh", "ja"):  # each language keeps a training speaker
        assert any(v.language == language and v.speaker not in MINI_TEST_SPEAKERS for v in VOICES)


def test_sentence_resources_are_clean() -> None:
    english = load_sentences("en")
    assert len(english) >= 300
    for s in english:
        assert MIN_WORDS <= len(s.split()) <= MAX_WORDS, s
        assert s.isascii() and not s.isupper(), s
    assert len(load_sentences("zh")) >= 30 and len(load_sentences("ja")) >= 30
    with pytest.raises(ValueError, match="language"):
        load_sentences("fr")


def test_split_sentences_drops_headings_and_splits_long_ones() -> None:
    prose = (
        "           CHAPTER I: Down the Rabbit-Hole.\n\n"
        "  Alice was beginning to get VERY tired of sitting by her sister on the bank, and of\n"
        "having nothing to do:  once or twice she had peeped into the book her sister was\n"
        "reading, but it had no pictures or conversations in it, `and what is the use of a book,'\n"
        "thought Alice. Oh dear!\n"
    )
    out = split_sentences(prose)
    assert out and all(MIN_WORDS <= len(s.split()) <= MAX_WORDS for s in out)
    assert not any("CHAPTER" in s or "Rabbit-Hole" in s for s in out)
    assert not any("`" in s or "VERY" in s for s in out)
    assert "Oh dear!" not in out  # too short


def test_tidy_phones_clips_and_keeps_order() -> None:
    phones = [("pau", 0.0, 0.2), ("ae", 0.2, 0.2), ("l", 0.2, 0.45), ("pau", 0.45, 0.52)]
    out = tidy_phones(phones, duration=0.5)
    assert [p[0] for p in out] == ["pau", "l", "pau"]  # empty "ae" dropped
    assert out[-1][1] + out[-1][2] == pytest.approx(0.5)


# ---------------------------------------------------------------- real synthesis, tiny scale


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = tmp_path_factory.mktemp("mini")
    make_mini_corpus(corpus, num_jobs=2, scale=0.01)
    return corpus


@needs_engines
def test_tiny_corpus_wavs_and_alignments(tiny_corpus: Path) -> None:
    records = load_metadata(tiny_corpus)
    assert len({r["speaker"] for r in records}) == len(VOICES)
    engines = {r["engine"] for r in records}
    assert engines == {"flite", "festival", "espeak"}
    for r in records:
        audio, sr = sf.read(tiny_corpus / r["wav"], dtype="int16")
        info = sf.info(tiny_corpus / r["wav"])
        assert info.channels == 1 and info.subtype == "PCM_16"
        assert sr == r["sample_rate"] and len(audio) == r["num_samples"] > sr // 2
        assert abs(audio).max() > 1000  # not silence
        phones = r["phones"]
        assert phones, f"{r['id']} has no phone timings"
        end = 0.0
        for symbol, start, dur in phones:
            assert symbol and dur > 0 and start >= end - 1e-6
            end = start + dur
        assert end <= r["duration"] + 1e-6
        assert end > 0.5 * r["duration"]
        if r["language"] == "en":  # the timings belong to this text, not to some other
            spoken = [p for p in phones if p[0] not in ("pau", "_", "_:", "_|")]
            letters = sum(c.isalpha() for c in r["text"])
            assert 0.4 * letters <= len(spoken) <= 1.5 * letters, (r["id"], r["text"], len(spoken))
    rates = {r["engine"]: r["sample_rate"] for r in records}
    assert rates["espeak"] == 22050 and rates["flite"] == 16000  # native rates kept


@needs_engines
def test_rerun_is_idempotent(tiny_corpus: Path) -> None:
    files = sorted(p for p in tiny_corpus.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    make_mini_corpus(tiny_corpus, num_jobs=2, scale=0.01)
    after = sorted(p for p in tiny_corpus.rglob("*") if p.is_file())
    assert after == files
    assert {p: p.stat().st_mtime_ns for p in after} == before


@needs_engines
def test_resume_rebuilds_only_damaged_files(tiny_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "copy"
    shutil.copytree(tiny_corpus, corpus)
    records = load_metadata(corpus)
    damaged = corpus / records[0]["wav"]
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated wav
    untouched = corpus / records[1]["wav"]
    mtime = untouched.stat().st_mtime_ns
    make_mini_corpus(corpus, num_jobs=1, scale=0.01)
    assert sf.info(damaged).frames == records[0]["num_samples"]
    assert untouched.stat().st_mtime_ns == mtime


@needs_engines
def test_manifests_and_split(tiny_corpus: Path, tmp_path: Path) -> None:
    manifests = prepare_mini_manifests(tiny_corpus, tmp_path)
    assert (tmp_path / "mini_recordings_all.jsonl.gz").is_file()
    assert (tmp_path / "mini_supervisions_all.jsonl.gz").is_file()
    sups = manifests["supervisions"]
    assert {s.language for s in sups} == {"en", "zh", "ja"}
    for s in sups:
        assert s.custom["phone_set"] in ("cmu", "espeak")
        items = s.alignment["phone"]
        assert items and items[-1].end <= s.duration + 1e-6
    cuts = CutSet.from_manifests(recordings=manifests["recordings"], supervisions=sups)
    splits = split_mini(cuts, dev_per_speaker=1)
    speakers = {k: {c.supervisions[0].speaker for c in v} for k, v in splits.items()}
    assert speakers["test"] == set(MINI_TEST_SPEAKERS)
    assert not speakers["test"] & (speakers["train"] | speakers["dev"])
    assert sum(len(v) for v in splits.values()) == len(cuts)


def test_missing_corpus_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="stage 0"):
        prepare_mini_manifests(tmp_path)


@needs_engines
def test_mandarin_sentences_stay_in_mandarin() -> None:
    voice = next(v for v in VOICES if v.language == "zh")
    text = "\n".join(load_sentences("zh"))
    out = subprocess.run(
        ["espeak-ng", "-v", voice.name.split("+")[0], "-q", "-x", text],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(en)" not in out  # espeak-ng would otherwise spell syllables in English


@needs_engines
def test_unknown_espeak_voice_is_a_clear_error(tmp_path: Path) -> None:
    from valle.data.mini.engines import synthesize_espeak

    with pytest.raises(ValueError, match="espeak-ng --voices"):
        synthesize_espeak("hello there", "no-such-voice", tmp_path / "x.wav", rate=150, pitch=50)
    assert not (tmp_path / "x.wav").exists()


def test_corrupt_wav_is_reported_by_name_without_a_traceback(tmp_path: Path, capsys) -> None:
    """Issue #8.8: stage 1 gave a raw lhotse traceback for a corrupt wav."""
    import json

    from valle.bin.prepare import main

    corpus = tmp_path / "corpus"
    wav = corpus / "wav" / "spk" / "u1.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(64))
    record = {"id": "u1", "wav": "wav/spk/u1.wav", "num_samples": 16000, "phones": []}
    (corpus / "metadata.jsonl").write_text(json.dumps(record) + "\n")
    rc = main(["mini-manifests", "--corpus-dir", str(corpus), "--output-dir", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(wav.resolve()) in err and "unreadable" in err and "rerun stage 0" in err
    assert "Traceback" not in err
