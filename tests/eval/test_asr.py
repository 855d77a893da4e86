"""ASR backends with tiny random models (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valle.eval.asr import ASR, HubertCTCASR, build_asr
from valle.eval.audio import resample


def tiny_hubert(vocab_size: int, seed: int = 0):
    from transformers import HubertConfig, HubertForCTC

    cfg = HubertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 8, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    return HubertForCTC(cfg)


def noise(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def test_tiny_hubert_batch_equals_one_by_one(ctc_processor, ctc_vocab):
    model = tiny_hubert(len(ctc_vocab))
    waves = [noise(16000, 0), noise(26000, 1), noise(9000, 2)]
    batched = HubertCTCASR(model, ctc_processor, batch_size=8)
    single = HubertCTCASR(model, ctc_processor, batch_size=1)
    assert isinstance(batched, ASR)
    out = batched.transcribe(waves, 16000)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert out == single.transcribe(waves, 16000)
    # Only characters of the vocabulary (special tokens skipped), words split on "|".
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")
    assert all(set(t) <= allowed for t in out)


def test_tiny_hubert_resamples_to_its_rate(ctc_processor, ctc_vocab):
    asr = HubertCTCASR(tiny_hubert(len(ctc_vocab)), ctc_processor)
    w8k = noise(12000, 3)
    assert asr.transcribe([w8k], 8000) == asr.transcribe([resample(w8k, 8000, 16000)], 16000)
    # A tensor input gives the same result as the numpy array.
    assert asr.transcribe([torch.from_numpy(w8k)], 8000) == asr.transcribe([w8k], 8000)


def test_biased_head_spells_a_letter(ctc_processor, ctc_vocab):
    model = tiny_hubert(len(ctc_vocab))
    with torch.no_grad():
        model.lm_head.bias.zero_()
        model.lm_head.bias[ctc_vocab["K"]] = 1e4  # every frame says K; CTC collapses the run
    asr = HubertCTCASR(model, ctc_processor)
    assert asr.transcribe([noise(16000, 4)], 16000) == ["K"]


class ScriptedCTC(torch.nn.Module):
    """A fake CTC model that emits a fixed frame sequence, to check the CTC collapsing path."""

    def __init__(self, frame_ids: list[int], vocab_size: int) -> None:
        super().__init__()
        self.frame_ids = frame_ids
        self.vocab_size = vocab_size

    def forward(self, input_values, attention_mask=None):
        b = input_values.shape[0]
        logits = torch.full((b, len(self.frame_ids), self.vocab_size), -10.0)  # (B, T, V)
        logits[:, torch.arange(len(self.frame_ids)), torch.tensor(self.frame_ids)] = 10.0
        return type("Out", (), {"logits": logits})()


def test_ctc_collapse_keeps_double_letters_across_blank(ctc_processor, ctc_vocab):
    spelled = [
        "H",
        "H",
        "<pad>",
        "E",
        "L",
        "<pad>",
        "L",
        "L",
        "O",
        "|",
        "|",
        "W",
        "O",
        "<pad>",
        "R",
        "L",
        "D",
        "<pad>",
    ]
    asr = HubertCTCASR(ScriptedCTC([ctc_vocab[s] for s in spelled], len(ctc_vocab)), ctc_processor)
    assert asr.transcribe([noise(8000, 5)], 16000) == ["HELLO WORLD"]


def test_hubert_rejects_other_languages(ctc_processor, ctc_vocab):
    asr = HubertCTCASR(tiny_hubert(len(ctc_vocab)), ctc_processor)
    with pytest.raises(ValueError, match="English"):
        asr.transcribe([noise(8000, 6)], 16000, language="zh")


def test_empty_and_tiny_waves_are_empty_transcripts(ctc_processor, ctc_vocab):
    model = tiny_hubert(len(ctc_vocab))
    with torch.no_grad():
        model.lm_head.bias.zero_()
        model.lm_head.bias[ctc_vocab["K"]] = 1e4
    asr = HubertCTCASR(model, ctc_processor)
    waves = [np.zeros(0, np.float32), noise(16000, 7), noise(100, 8)]
    # A system output with no audio is scored as deleting every word, not a crash.
    assert asr.transcribe(waves, 16000) == ["", "K", ""]


def test_unknown_backend_lists_names():
    with pytest.raises(ValueError, match="faster-whisper"):
        build_asr("kaldi")


def test_missing_faster_whisper_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--asr-path"):
        build_asr("faster-whisper", str(tmp_path / "nope"))


class RecordingWhisperParts:
    """Stand-ins for a Whisper processor and model that record what they are given."""

    def __init__(self) -> None:
        self.feature_extractor = type("FE", (), {"sampling_rate": 16000})()
        self.seen_lengths: list[list[int]] = []
        self.generate_kwargs: list[dict] = []

    # processor API
    def __call__(self, batch, sampling_rate, return_tensors):
        assert sampling_rate == 16000
        self.seen_lengths.append([len(w) for w in batch])
        feats = torch.zeros(len(batch), 80, 3000)  # (B, F, T)
        return type("Feats", (), {"input_features": feats})()

    def batch_decode(self, ids, skip_special_tokens):
        assert skip_special_tokens
        return [f" utterance {int(row[0])} " for row in ids]

    # model API
    def to(self, device):
        return self

    def eval(self):
        return self

    def generate(self, feats, **kwargs):
        self.generate_kwargs.append(kwargs)
        return torch.arange(feats.shape[0])[:, None]  # (B, L=1)


def test_whisper_asr_resamples_batches_and_passes_language():
    from valle.eval.asr import WhisperASR

    parts = RecordingWhisperParts()
    asr = WhisperASR(parts, parts, batch_size=2, num_beams=5)
    out = asr.transcribe([noise(8000, 0), noise(4000, 1), noise(2000, 2)], 8000, language="fr")
    assert out == ["utterance 0", "utterance 1", "utterance 0"]
    assert parts.seen_lengths == [[16000, 8000], [4000]]  # 8 kHz -> 16 kHz, batches of 2
    assert parts.generate_kwargs[0] == {"num_beams": 5, "task": "transcribe", "language": "fr"}


def test_faster_whisper_wrapper_passes_options_and_resamples():
    from valle.eval.asr import FasterWhisperASR

    class FakeWhisperModel:
        def __init__(self) -> None:
            self.calls: list[tuple[int, dict]] = []

        def transcribe(self, audio, **kwargs):
            self.calls.append((len(audio), kwargs))
            seg = type("Segment", (), {"text": f" {len(audio)} samples "})()
            return iter([seg, seg]), None

    fake = FakeWhisperModel()
    asr = FasterWhisperASR(model=fake, beam_size=5)
    out = asr.transcribe([noise(22050, 0), np.zeros(10, np.float32)], 22050, language="ja")
    assert out == ["16000 samples 16000 samples", ""]
    assert len(fake.calls) == 1  # the 10-sample wave never reaches the model
    kwargs = fake.calls[0][1]
    assert kwargs["language"] == "ja" and kwargs["beam_size"] == 5
