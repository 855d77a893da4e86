"""Speaker similarity: resemblyzer on flite voices, WavLM-SV with a tiny random config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valle.eval.audio import resample
from valle.eval.similarity import (
    SpeakerEncoder,
    WaveBatch,
    WavLMSVEncoder,
    cosine_similarity,
    score_similarity,
)

VOICES = ["slt", "awb", "rms", "kal"]
SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
]


@pytest.fixture(scope="module")
def resemblyzer_encoder():
    from valle.eval.similarity import ResemblyzerEncoder

    return ResemblyzerEncoder()


def test_resemblyzer_same_speaker_beats_different_speaker(flite_say, resemblyzer_encoder):
    enc = resemblyzer_encoder
    assert isinstance(enc, SpeakerEncoder)
    emb = {}
    for v in VOICES:
        for k, text in enumerate(SENTENCES):
            wave, sr = flite_say(v, text)
            emb[v, k] = enc.embed([wave], sr)[0]

    def sim(a, b):
        return float(cosine_similarity(emb[a][None], emb[b][None])[0])

    same = {v: sim((v, 0), (v, 1)) for v in VOICES}
    diff = {v: max(sim((v, 0), (u, 1)) for u in VOICES if u != v) for v in VOICES}
    # Measured: same 0.85-0.89, closest other voice 0.47-0.74.
    for v in VOICES:
        assert same[v] > diff[v] + 0.05, (v, same[v], diff[v])
    assert np.mean(list(same.values())) - np.mean(list(diff.values())) > 0.15


def test_score_similarity_rows(flite_say, resemblyzer_encoder):
    a0, sr = flite_say("slt", SENTENCES[0])
    a1, _ = flite_say("slt", SENTENCES[1])
    b1, _ = flite_say("awb", SENTENCES[1])
    # The "system" says sentence 0 in slt's voice; its prompt is slt (item 0) or awb (item 1).
    res = score_similarity(
        resemblyzer_encoder,
        ["same", "other"],
        system=WaveBatch([a0, a0], sr),
        prompt=WaveBatch([a1, b1], sr),
        original=WaveBatch([a0, a0], sr),
    )
    by_id = {r.id: r for r in res.rows}
    assert by_id["same"].sim_o > by_id["other"].sim_o
    assert by_id["same"].sim_utt == pytest.approx(1.0, abs=1e-4)
    assert by_id["same"].sim_r is None and res.summary()["sim_r"] is None
    assert res.summary()["sim_o"] == pytest.approx((by_id["same"].sim_o + by_id["other"].sim_o) / 2)


def tiny_wavlm_sv(seed: int = 0):
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    cfg = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 8, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_buckets=16,
        max_bucket_distance=64,
        tdnn_dim=(16, 16, 32),
        tdnn_kernel=(3, 3, 1),
        tdnn_dilation=(1, 2, 1),
        xvector_output_dim=12,
    )
    torch.manual_seed(seed)
    fe = Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=True
    )
    return WavLMSVEncoder(WavLMForXVector(cfg), fe)


def noise(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def test_tiny_wavlm_sv_embeddings():
    enc = tiny_wavlm_sv()
    assert isinstance(enc, SpeakerEncoder)
    waves = [noise(16000, 0), noise(24000, 1)]
    emb = enc.embed(waves, 16000)
    assert emb.shape == (2, 12) and torch.isfinite(emb).all()
    # An embedding does not depend on the other items of the batch.
    torch.testing.assert_close(enc.embed(waves[:1], 16000)[0], emb[0])
    # Different inputs give different embeddings; resampling happens inside.
    assert float(cosine_similarity(emb[:1], emb[1:])[0]) < 0.9999
    w8 = noise(8000, 2)
    torch.testing.assert_close(enc.embed([w8], 8000), enc.embed([resample(w8, 8000, 16000)], 16000))


def test_score_similarity_checks_lengths():
    enc = tiny_wavlm_sv()
    with pytest.raises(ValueError, match="one per id"):
        score_similarity(
            enc,
            ["a", "b"],
            WaveBatch([noise(8000, 0)] * 2, 16000),
            prompt=WaveBatch([noise(8000, 1)], 16000),
        )
    with pytest.raises(ValueError, match="at least one reference"):
        score_similarity(enc, ["a"], WaveBatch([noise(8000, 0)], 16000))


def test_cosine_similarity_known_values():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    b = torch.tensor([[2.0, 0.0], [-1.0, -1.0], [0.0, 3.0]])
    torch.testing.assert_close(cosine_similarity(a, b), torch.tensor([1.0, -1.0, 0.0]))
