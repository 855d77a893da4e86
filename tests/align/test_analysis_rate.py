"""The aligner's analysis rate: a whole sample rate with a whole hop at the codec's frame rate."""

from __future__ import annotations

import pytest
import torch

from valle.align.features import AlignFeatures, FeatureConfig, analysis_rate


@pytest.mark.parametrize(
    ("frame_rate", "expected"),
    [
        (80.0, (16000, 200)),  # the mini recipe's mel-RVQ codec
        (75.0, (15975, 213)),  # EnCodec
        (22050 / 256, (11025, 128)),  # a codec on the packaged HiFi-GAN's mels (86.13 Hz)
        (86.132812, (11025, 128)),  # the same as the cuts store it (6 decimals)
    ],
)
def test_analysis_rate_is_whole_and_near_16_khz(frame_rate: float, expected) -> None:
    rate, hop = analysis_rate(frame_rate)
    assert (rate, hop) == expected
    assert rate == pytest.approx(hop * frame_rate, abs=1e-3)


def test_features_at_86_hz_have_one_frame_per_code_frame() -> None:
    feats = AlignFeatures(FeatureConfig(frame_rate=22050 / 256))
    wave = torch.randn(feats.sample_rate)  # 1 s
    assert feats.from_wave(wave, 86).shape == (86, 80)


def test_impossible_frame_rate_is_explained() -> None:
    with pytest.raises(ValueError, match="no whole sample rate"):
        analysis_rate(7000.3)
