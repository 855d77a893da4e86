"""valle.data.libritts: thin wrappers over lhotse's LibriTTS / LibriSpeech recipes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from valle.data.libritts import (
    libritts_split_of,
    prepare_librispeech_test_clean_cuts,
    prepare_libritts_cuts,
)
from valle.data.manifests import load_cuts


def _tone(path, sr, secs=0.5):
    t = np.arange(int(secs * sr)) / sr
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)


def make_librispeech(root):
    d = root / "LibriSpeech" / "test-clean" / "1089" / "134686"
    d.mkdir(parents=True)
    lines = []
    for i, text in enumerate(["HE HOPED THERE WOULD BE STEW", "STUFF IT INTO YOU"]):
        utt = f"1089-134686-{i:04d}"
        _tone(d / f"{utt}.flac", 16000)
        lines.append(f"{utt} {text}")
    (d / "1089-134686.trans.txt").write_text("\n".join(lines) + "\n")


def make_libritts(root):
    for part, spk in (("train-clean-100", "19"), ("dev-other", "116")):
        d = root / "LibriTTS" / part / spk / "198"
        d.mkdir(parents=True)
        utt = f"{spk}_198_000000_000000"
        _tone(d / f"{utt}.wav", 24000)
        (d / f"{spk}_198.trans.tsv").write_text(f"{utt}\tHello there.\tHello there.\n")
        (d / f"{spk}_198.book.tsv").write_text(f"{utt}\tHello there.\tHello there.\ttrue\t30.1\n")


def test_librispeech_test_clean(tmp_path):
    make_librispeech(tmp_path / "corpus")
    cuts = prepare_librispeech_test_clean_cuts(tmp_path / "corpus", tmp_path / "out")
    assert sorted(c.id for c in cuts) == ["1089-134686-0000", "1089-134686-0001"]
    assert {c.supervisions[0].speaker for c in cuts} == {"1089"}
    again = load_cuts(tmp_path / "out" / "librispeech_cuts_test-clean.jsonl.gz")
    assert sorted(c.supervisions[0].text for c in again) == [
        "HE HOPED THERE WOULD BE STEW",
        "STUFF IT INTO YOU",
    ]


def test_libritts_subset_routing(tmp_path):
    make_libritts(tmp_path / "root")
    # the parent of LibriTTS/ is accepted too; every present part is prepared
    cuts = prepare_libritts_cuts(tmp_path / "root", tmp_path / "out")
    by_id = {c.id: c for c in cuts}
    assert set(by_id) == {"19_198_000000_000000", "116_198_000000_000000"}
    assert libritts_split_of(by_id["19_198_000000_000000"]) == "train"
    assert libritts_split_of(by_id["116_198_000000_000000"]) is None  # dev-other: unused
    sup = by_id["19_198_000000_000000"].supervisions[0]
    assert sup.custom["subset"] == "train-clean-100" and sup.custom["snr"] == pytest.approx(30.1)


def test_libritts_errors_say_what_to_do(tmp_path):
    make_libritts(tmp_path / "root")
    with pytest.raises(FileNotFoundError, match="found .*train-clean-100"):
        prepare_libritts_cuts(tmp_path / "root", tmp_path / "out", parts=["test-clean"])
    with pytest.raises(ValueError, match="unknown LibriTTS part"):
        prepare_libritts_cuts(tmp_path / "root", tmp_path / "out", parts=["train-clean-5"])
    with pytest.raises(FileNotFoundError, match="stage 0"):
        prepare_libritts_cuts(tmp_path / "missing", tmp_path / "out")


# ---------------------------------------------------------------- changed and bad inputs (#8)


def _part_dir(root, part="train-clean-100", spk="19"):
    return root / "LibriTTS" / part / spk / "198"


def _set_transcript(root, text, part="train-clean-100", spk="19"):
    d = _part_dir(root, part, spk)
    utt = f"{spk}_198_000000_000000"
    (d / f"{spk}_198.trans.tsv").write_text(f"{utt}\t{text}\t{text}\n")


def test_fixed_transcript_replaces_the_cached_manifests(tmp_path):
    """Issue #8.6: lhotse reuses its per-part manifests whenever they exist, so a fixed
    transcript never reached the cuts, even with the recipe's .done markers deleted."""
    make_libritts(tmp_path / "root")
    _set_transcript(tmp_path / "root", "...")
    cuts = prepare_libritts_cuts(tmp_path / "root", tmp_path / "out")
    assert {c.supervisions[0].text for c in cuts} == {"...", "Hello there."}
    _set_transcript(tmp_path / "root", "Hello again.")
    cuts = prepare_libritts_cuts(tmp_path / "root", tmp_path / "out")
    texts = {c.id: c.supervisions[0].text for c in cuts}
    assert texts["19_198_000000_000000"] == "Hello again."
    again = load_cuts(tmp_path / "out" / "libritts_cuts_all.jsonl.gz")
    assert {c.id: c.supervisions[0].text for c in again} == texts


def test_unchanged_parts_reuse_the_cached_manifests(tmp_path):
    make_libritts(tmp_path / "root")
    prepare_libritts_cuts(tmp_path / "root", tmp_path / "out")
    cached = tmp_path / "out" / "libritts_supervisions_dev-other.jsonl.gz"
    before = cached.stat().st_mtime_ns
    _set_transcript(tmp_path / "root", "Hello again.")  # train-clean-100 only
    prepare_libritts_cuts(tmp_path / "root", tmp_path / "out")
    assert cached.stat().st_mtime_ns == before


def test_corrupt_wav_is_reported_by_name_without_a_traceback(tmp_path, capsys):
    """Issue #8.8: a corrupt wav gave a raw lhotse traceback at manifest stage 1."""
    from valle.bin.prepare import main

    make_libritts(tmp_path / "root")
    bad = _part_dir(tmp_path / "root") / "19_198_000000_000000.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    rc = main(
        [
            "libritts-manifests",
            "--corpus-dir",
            str(tmp_path / "root" / "LibriTTS"),
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert str(bad) in err and "unreadable" in err
    assert "Re-download" in err and "move them out" in err
    assert "Traceback" not in err


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: 44 + (len(data) - 44) // 2])  # header intact, half the samples


def test_truncated_wav_is_an_error_naming_it_or_left_out_on_request(tmp_path, caplog):
    """Issue #8.10: a truncated wav (valid header, half the samples) passed silently."""
    from valle.data.libritts import BadAudioError

    make_libritts(tmp_path / "root")
    bad = _part_dir(tmp_path / "root") / "19_198_000000_000000.wav"
    _truncate(bad)
    with pytest.raises(BadAudioError, match="truncated") as e:
        prepare_libritts_cuts(tmp_path / "root", tmp_path / "out")
    assert str(bad) in str(e.value) and "--skip-bad-audio" in str(e.value)
    assert "0.50 s), the file holds" in str(e.value)

    cuts = prepare_libritts_cuts(tmp_path / "root", tmp_path / "out", skip_bad_audio=True)
    assert [c.id for c in cuts] == ["116_198_000000_000000"]
    assert str(bad) in caplog.text and "left out" in caplog.text
    # a rerun from the cache still knows the file is bad
    with pytest.raises(BadAudioError, match="truncated"):
        prepare_libritts_cuts(tmp_path / "root", tmp_path / "out")
