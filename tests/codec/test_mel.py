"""LogMel: shapes, frame-count rule, a sine's energy in the right mel bin, SpeechT5 parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valle.codec.mel import LogMel, MelConfig


def _sine(freq: float, sr: int = 16000, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(sr * seconds)) / sr
    return 0.5 * torch.sin(2 * torch.pi * freq * t)


@pytest.mark.parametrize("n", [1, 199, 200, 201, 1000, 16000, 16123])
def test_frame_count_rule(n: int) -> None:
    lm = LogMel(MelConfig(hop_length=200, n_mels=40))
    out = lm(torch.randn(n) * 0.1)
    assert out.shape == (1, 1 + n // 200, 40)
    assert out.shape[1] == lm.num_frames(n)


def test_batch_and_unbatched_agree() -> None:
    lm = LogMel()
    x = torch.randn(3, 4000) * 0.1
    batched = lm(x)
    assert batched.shape == (3, 21, 80)
    assert torch.allclose(batched[1], lm(x[1])[0], atol=1e-5)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3500.0])
@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_sine_peaks_in_the_right_mel_bin(freq: float, scale: str) -> None:
    cfg = MelConfig(n_mels=64, mel_scale=scale, norm=None)
    lm = LogMel(cfg)
    mel = lm(_sine(freq))[0]  # (T, F)
    peak_bin = int(mel[2:-2].mean(0).argmax())
    # the bin whose filter responds most to `freq`
    k = round(freq * cfg.n_fft / cfg.sample_rate)
    expected = int(lm.mel_basis[k].argmax())
    assert abs(peak_bin - expected) <= 1
    # and it is not a bin far away (the filter centres increase with the bin index)
    other = lm(_sine(freq * 2))[0][2:-2].mean(0).argmax()
    assert int(other) > peak_bin


def test_matches_speecht5_feature_extractor() -> None:
    from transformers import SpeechT5FeatureExtractor

    x = np.random.RandomState(0).randn(12345).astype(np.float32) * 0.1
    ref = SpeechT5FeatureExtractor()(audio_target=x, sampling_rate=16000, return_tensors="pt")
    ours = LogMel(MelConfig.speecht5())(torch.from_numpy(x))
    assert ours.shape == ref["input_values"].shape
    assert torch.allclose(ours, ref["input_values"], atol=1e-4)


def test_log_floor_and_silence() -> None:
    lm = LogMel(MelConfig(log_floor=1e-4))
    mel = lm(torch.zeros(1000))
    assert torch.allclose(mel, torch.full_like(mel, float(np.log(1e-4))))
    assert lm.log_floor_value == pytest.approx(float(np.log(1e-4)))


def test_bad_input_is_explained() -> None:
    lm = LogMel()
    with pytest.raises(ValueError, match="shape"):
        lm(torch.zeros(2, 2, 100))
    with pytest.raises(TypeError, match="float"):
        lm(torch.zeros(100, dtype=torch.long))
    with pytest.raises(ValueError, match="win_length"):
        MelConfig(n_fft=512, win_length=1024)
    with pytest.raises(ValueError, match="fmax"):
        MelConfig(sample_rate=16000, fmax=9000)


def test_config_dict_round_trip() -> None:
    cfg = MelConfig.speecht5()
    assert MelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        MelConfig.from_dict({**cfg.to_dict(), "nmels": 3})
