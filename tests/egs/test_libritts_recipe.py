"""egs/libritts/prepare.sh stages 1-4 on a tiny LibriTTS made on the spot, with a tiny EnCodec."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs" / "libritts" / "prepare.sh"

SENTENCES = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "We went home after the rain stopped.",
    "My father reads a book every night.",
]  # dev and test reuse train sentences, so no cut is dropped for unknown phonemes

# subset -> speakers (speaker, chapter, number of utterances)
LAYOUT = {
    "train-clean-100": [("103", "1240", 3), ("1034", "121119", 2)],
    "dev-clean": [("84", "121123", 2)],
    "test-clean": [("1089", "134686", 2)],
}


def make_libritts(root: Path, sr: int = 24000) -> Path:
    """``<root>/LibriTTS/<subset>/<speaker>/<chapter>/`` with wavs, texts and the .tsv files
    that lhotse's prepare_libritts reads (trans.tsv: id, original, normalized; book.tsv: the
    id first and the SNR last on each line)."""
    rng = np.random.default_rng(0)
    corpus = root / "LibriTTS"
    n = 0
    for subset, speakers in LAYOUT.items():
        for spk, chapter, count in speakers:
            d = corpus / subset / spk / chapter
            d.mkdir(parents=True)
            trans, book = [], []
            for i in range(count):
                utt = f"{spk}_{chapter}_{i:06d}_000000"
                text = SENTENCES[n % len(SENTENCES)]
                n += 1
                secs = 0.8 + 0.2 * i
                t = np.arange(int(secs * sr)) / sr
                wav = 0.2 * np.sin(2 * np.pi * (150 + 20 * i) * t) + 0.01 * rng.standard_normal(
                    t.shape
                )
                sf.write(str(d / f"{utt}.wav"), wav.astype(np.float32), sr)
                (d / f"{utt}.normalized.txt").write_text(text)
                (d / f"{utt}.original.txt").write_text(text)
                trans.append(f"{utt}\t{text}\t{text}")
                book.append(f"{utt}\t{text}\t{text}\ttrue\t{20.0 + i:.4f}")
            (d / f"{spk}_{chapter}.trans.tsv").write_text("\n".join(trans) + "\n")
            (d / f"{spk}_{chapter}.book.tsv").write_text("\n".join(book) + "\n")
    return corpus


def _read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    from valle.testing.codec import tiny_encodec_codec

    tmp = tmp_path_factory.mktemp("libritts")
    corpus = make_libritts(tmp / "root")
    codec = tiny_encodec_codec()
    codec_dir = tmp / "encodec_tiny"
    codec.model.save_pretrained(codec_dir)
    data = tmp / "data"
    cmd = [
        "bash",
        str(RECIPE),
        "--stage",
        "1",
        "--stop-stage",
        "4",
        "--data-dir",
        str(data),
        "--corpus-dir",
        str(corpus),
        "--parts",
        "train-clean-100 dev-clean test-clean",
        "--codec-path",
        str(codec_dir),
        "--bandwidth",
        str(codec.bandwidth),
        "--num-jobs",
        "1",
        "--chunk-size",
        "3",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return data, codec, proc


def test_splits_and_summary(recipe_run):
    data, codec, proc = recipe_run
    tok = data / "tokenized"
    expected = {"train": 5, "dev": 2, "test": 2}
    for split, count in expected.items():
        cuts = _read_jsonl(tok / f"libritts_cuts_{split}.jsonl.gz")
        assert len(cuts) == count, split
    summary = (tok / "libritts_summary.txt").read_text()
    assert "train" in summary and summary in proc.stdout
    row = next(line.split() for line in summary.splitlines() if line.startswith("train"))
    assert row[2:] == ["2", "5"]  # speakers, utterances


def test_codes_and_phonemes_usable(recipe_run):
    import torch
    from lhotse import CutSet

    from valle.data import batch as B
    from valle.data.audio import load_cut_audio
    from valle.data.codec_info import CodecInfo
    from valle.data.dataset import SpeechTokenDataset
    from valle.data.prompt import SameSpeakerPrompt
    from valle.testing.codec import non_tie_mismatches
    from valle.text import SymbolTable

    data, codec, _ = recipe_run
    tok = data / "tokenized"
    info = CodecInfo.from_file(tok / "codec.json")
    assert info.name == "encodec" and info.sample_rate == codec.sample_rate
    assert info.num_codebooks == codec.num_codebooks and info.frame_rate == codec.frame_rate
    train = CutSet.from_file(tok / "libritts_cuts_train.jsonl.gz").to_eager()
    symbols = SymbolTable.from_file(data / "tokens.txt")
    ds = SpeechTokenDataset(symbols, prompt=SameSpeakerPrompt(train, duration=0.2))
    batch = ds[train]
    assert batch[B.AUDIO_CODES].shape[2] == codec.num_codebooks
    assert batch[B.AUDIO_LENS].min() > 0 and batch[B.TEXT_LENS].min() > 0
    # the stored codes are the codec's codes of the (24 kHz -> codec rate) audio
    for cut in train:
        wave = load_cut_audio(cut, codec.sample_rate)
        ref = codec.encode([wave])[0]
        got = torch.from_numpy(cut.load_codes()).long()
        assert got.shape[0] >= ref.shape[0] - 1
        # batched encoding in the recipe may flip float near-ties, nothing else
        assert non_tie_mismatches(codec, wave, got, ref[: got.shape[0]]) == []
    chunks = sorted(p.name for p in (tok / "libritts_codes_chunks").glob("*.jsonl.gz"))
    assert chunks == [f"cuts.{k:05d}.jsonl.gz" for k in range(3)]  # 9 cuts, 3 per chunk


def test_rerun_skips_done_stages(recipe_run):
    data, codec, _ = recipe_run
    proc = subprocess.run(
        [
            "bash",
            str(RECIPE),
            "--stage",
            "2",
            "--stop-stage",
            "4",
            "--data-dir",
            str(data),
            "--codec-path",
            "/does/not/exist",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("skipping") == 3


def test_missing_corpus_says_what_to_do(tmp_path):
    proc = subprocess.run(
        [
            "bash",
            str(RECIPE),
            "--stage",
            "1",
            "--stop-stage",
            "1",
            "--data-dir",
            str(tmp_path),
            "--corpus-dir",
            str(tmp_path / "nowhere"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "nowhere not found" in proc.stdout + proc.stderr


def test_unknown_option_is_an_error(tmp_path):
    proc = subprocess.run(
        ["bash", str(RECIPE), "--stgae", "1"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0 and "unknown option --stgae" in proc.stderr


def _recipe(data, corpus, codec_dir, codec, stage=1):
    cmd = [
        "bash",
        str(RECIPE),
        "--stage",
        str(stage),
        "--stop-stage",
        "4",
        "--data-dir",
        str(data),
        "--corpus-dir",
        str(corpus),
        "--parts",
        "train-clean-100 dev-clean test-clean",
        "--codec-path",
        str(codec_dir),
        "--bandwidth",
        str(codec.bandwidth),
        "--num-jobs",
        "1",
        "--chunk-size",
        "3",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_fixed_transcript_gets_in_after_the_printed_redo(tmp_path):
    """Issue #8.6 / #8.8: a punctuation-only transcript fails stage 3 naming its utterance
    (not "text 6") and printing what to delete; after the fix and that deletion, the rerun
    takes the new text (the old code failed again: lhotse's cached manifests and the finished
    codec chunks kept the old text)."""
    import re

    from valle.testing.codec import tiny_encodec_codec

    corpus = make_libritts(tmp_path / "root")
    utt = "103_1240_000001_000000"
    trans = corpus / "train-clean-100" / "103" / "1240" / "103_1240.trans.tsv"
    good = trans.read_text()
    line = next(x for x in good.splitlines() if x.startswith(utt))
    trans.write_text(good.replace(line, f"{utt}\t...\t..."))
    codec = tiny_encodec_codec()
    codec_dir = tmp_path / "encodec_tiny"
    codec.model.save_pretrained(codec_dir)
    data = tmp_path / "data"

    proc = _recipe(data, corpus, codec_dir, codec)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"utterance {utt}" in out and "'...'" in out
    assert "text 6" not in out and "Traceback" not in out
    assert "rm -f" in out

    trans.write_text(good)  # the fix
    removed = re.findall(r"(/\S+/\.\w+\.done)", out[out.index("rm -f") :])
    assert str(data.resolve() / "manifests" / ".libritts.done") in removed
    for marker in removed:
        Path(marker).unlink(missing_ok=True)
    proc = _recipe(data, corpus, codec_dir, codec)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 of 3 chunks" in proc.stdout  # the audio did not change: nothing re-encoded
    train = {c["id"]: c for c in _read_jsonl(data / "tokenized" / "libritts_cuts_train.jsonl.gz")}
    assert train[utt]["supervisions"][0]["text"] == line.split("\t")[2]
