"""Shared fixtures for the evaluation tests: speech made on the spot with flite, tiny models."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from valle.eval.audio import load_wave

VOCAB_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"


@pytest.fixture(scope="session")
def flite_say(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str], tuple[np.ndarray, int]]:
    """``flite_say(voice, text) -> (wave, sample_rate)``; skips when flite is not installed."""
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (apt-get install flite)")
    out_dir = tmp_path_factory.mktemp("flite")
    cache: dict[tuple[str, str], tuple[np.ndarray, int]] = {}

    def say(voice: str, text: str) -> tuple[np.ndarray, int]:
        key = (voice, text)
        if key not in cache:
            path = out_dir / f"{voice}_{len(cache)}.wav"
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
            cache[key] = load_wave(path)
        return cache[key]

    return say


@pytest.fixture()
def ctc_vocab(tmp_path: Path) -> dict[str, int]:
    """A LibriSpeech-style CTC character vocabulary, written as ``vocab.json`` in tmp_path."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    for i, c in enumerate(VOCAB_CHARS):
        vocab[c] = 5 + i
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    return vocab


@pytest.fixture()
def ctc_processor(tmp_path: Path, ctc_vocab: dict[str, int]):
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    tokenizer = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), word_delimiter_token="|")
    fe = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )
    return Wav2Vec2Processor(feature_extractor=fe, tokenizer=tokenizer)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The tests run next to other jobs on 2 cores: one intra-op thread avoids spin contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SENTENCES = [
    "The birch canoe slid on the smooth planks, and the boy glued the sheet to the dark blue "
    "background.",
    "It is easy to tell the depth of a well when rice is often served in round bowls.",
    "The juice of lemons makes fine punch, and the box was thrown beside the parked truck.",
]


@pytest.fixture(scope="session")
def flite_corpus(tmp_path_factory: pytest.TempPathFactory, flite_say):
    """Two flite speakers x three sentences (4.2-5.9 s each) as a lhotse cuts manifest.

    Returns ``(cuts_path, audio_dir)``; the audio files are named ``<cut id>.wav``.
    """
    import soundfile as sf
    from lhotse import CutSet, Recording, SupervisionSegment

    d = tmp_path_factory.mktemp("flite_corpus")
    cuts = []
    for voice in ("slt", "awb"):
        for k, text in enumerate(SENTENCES):
            cid = f"{voice}-{k}"
            wave, sr = flite_say(voice, text)
            path = d / f"{cid}.wav"
            sf.write(path, wave, sr)
            rec = Recording.from_file(path, recording_id=cid)
            cut = rec.to_cut()
            cut.supervisions = [
                SupervisionSegment(
                    id=cid,
                    recording_id=cid,
                    start=0.0,
                    duration=rec.duration,
                    text=text,
                    speaker=voice,
                    language="en",
                )
            ]
            cuts.append(cut)
    path = d / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path, d


#: The tokenized test cuts' frame shift (20 code frames per second) and phoneme inventory.
CODES_FRAME_SHIFT = 0.05
CODES_PHONES = ("a", "b", "c", "d", "e")


@pytest.fixture
def tokenized_cuts() -> Callable[..., object]:
    """``tokenized_cuts(root, n) -> CutSet``: ``n`` cuts of 70 + 10 i random codes (T, 2) in
    [0, 16) at 20 frames per second (3.5 s and longer) and 4 + i phonemes of
    :data:`CODES_PHONES`, language en, two speakers, as the tokenize stage writes them."""
    from lhotse import CutSet, NumpyFilesWriter, SupervisionSegment
    from lhotse.testing.dummies import dummy_cut

    def make(root: Path, n: int) -> CutSet:
        rng = np.random.default_rng(0)
        cuts = []
        with NumpyFilesWriter(str(root / "codes")) as writer:
            for i in range(n):
                frames = 70 + 10 * i
                duration = frames * CODES_FRAME_SHIFT
                cut = dummy_cut(i, duration=duration, with_data=False)
                codes = rng.integers(0, 16, size=(frames, 2))
                arr = writer.store_array(
                    cut.id, codes, frame_shift=CODES_FRAME_SHIFT, temporal_dim=0
                )
                sup = SupervisionSegment(
                    id=cut.id, recording_id=cut.recording_id, start=0.0, duration=duration,
                    text="x", language="en", speaker=f"spk{i % 2}",
                    custom={"phonemes": [CODES_PHONES[(i + k) % 5] for k in range(4 + i)]},
                )  # fmt: skip
                cut = cut.with_custom("codes", arr)
                cut.supervisions = [sup]
                cuts.append(cut)
        return CutSet.from_cuts(cuts)

    return make
