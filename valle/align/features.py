"""Log-mel features for the aligner, at the codec's frame rate.

Shape legend: N samples, T code frames, F mel bins.

The aligner's durations are counted in codec frames, so its features are computed at the codec's
frame rate (read from each cut's stored codes: 80 Hz for the mini corpus's mel-RVQ codec, 75 Hz
for EnCodec, 86.13 Hz for a codec on the packaged HiFi-GAN's mels). The analysis sample rate is
the whole rate nearest 16 kHz that gives a whole hop at that frame rate (:func:`analysis_rate`).

Frame rule: code frame ``t`` covers samples ``[t * hop, (t + 1) * hop)``; its feature frame is
centred on the middle of that span (the wave loses its first ``hop // 2`` samples before a
centred STFT), and the feature count is cut or edge-padded to the cut's number of code frames
``T``, so feature frame ``t`` and code frame ``t`` describe the same audio. Each utterance's
features are normalised to zero mean and unit variance per mel bin (speakers and engines differ
in loudness and timbre; phone identity does not).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from lhotse.cut import Cut

from valle.codec.mel import LogMel, MelConfig
from valle.data.audio import load_cut_audio
from valle.data.prompt import frame_rate_of, load_codes

__all__ = ["FeatureConfig", "AlignFeatures", "analysis_rate", "num_code_frames"]

_BASE_RATE = 16000


def analysis_rate(frame_rate: float) -> tuple[int, int]:
    """``(sample_rate, hop)`` with ``sample_rate == hop * frame_rate`` a whole number of Hz, the
    rate nearest 16 kHz among 8-48 kHz (80 Hz -> 16000 / 200, 75 Hz -> 15975 / 213, the
    packaged HiFi-GAN's 22050 / 256 = 86.13 Hz -> 11025 / 128)."""
    if frame_rate <= 0:
        raise ValueError(f"frame rate must be > 0 Hz, got {frame_rate}")
    best: tuple[int, int] | None = None
    for hop in range(1, int(48000 / frame_rate) + 1):
        rate = hop * frame_rate
        if rate < 8000 or abs(rate - round(rate)) > 1e-3:  # frame rates stored to 6 decimals
            continue
        if best is None or abs(round(rate) - _BASE_RATE) < abs(best[0] - _BASE_RATE):
            best = (int(round(rate)), hop)
    if best is None:
        raise ValueError(
            f"no whole sample rate in 8-48 kHz gives a whole hop at {frame_rate} Hz frames"
        )
    return best


@dataclass(frozen=True)
class FeatureConfig:
    """Aligner features.

    Attributes:
        frame_rate: codec frames per second (Hz); durations are counted in these frames.
        n_mels: F, mel bins.
        window_ms: analysis window in milliseconds (Hann).
    """

    frame_rate: float = 80.0
    n_mels: int = 80
    window_ms: float = 25.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        return cls(**d)


class AlignFeatures:
    """Cut (or wave) -> normalised log-mel ``(T, F)`` at the codec frame rate."""

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self.sample_rate, self.hop = analysis_rate(config.frame_rate)
        win = max(self.hop, round(config.window_ms * self.sample_rate / 1000))
        n_fft = 1 << (win - 1).bit_length()
        self.mel = LogMel(
            MelConfig(
                sample_rate=self.sample_rate,
                n_fft=n_fft,
                win_length=win,
                hop_length=self.hop,
                n_mels=config.n_mels,
                fmin=20.0,
                fmax=None,
            )
        )

    def from_wave(self, wave: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Mono wave ``(N,)`` at ``self.sample_rate`` -> ``(num_frames, F)`` float32."""
        wave = wave[self.hop // 2 :]  # frame t centred on the middle of code frame t
        if wave.numel() == 0:
            wave = torch.zeros(1)
        with torch.inference_mode():
            x = self.mel(wave)[0]  # (T', F)
        if x.shape[0] >= num_frames:
            x = x[:num_frames]
        else:
            x = torch.cat([x, x[-1:].expand(num_frames - x.shape[0], -1)])  # (T, F)
        x = (x - x.mean(0)) / x.std(0).clamp_min(1e-3)
        return x.float().clone()

    def __call__(self, cut: Cut, num_frames: int | None = None) -> torch.Tensor:
        """The cut's features ``(T, F)``; ``T`` is its number of code frames unless given."""
        if abs(frame_rate_of(cut) - self.config.frame_rate) > 1e-6:
            raise ValueError(
                f"cut {cut.id}: codes at {frame_rate_of(cut):g} Hz, but the aligner works at "
                f"{self.config.frame_rate:g} Hz (train it on cuts of the same codec)"
            )
        if num_frames is None:
            num_frames = num_code_frames(cut)
        return self.from_wave(load_cut_audio(cut, self.sample_rate), num_frames)


def num_code_frames(cut: Cut) -> int:
    """T, the cut's number of code frames: the length of its stored codes (the manifest's
    ``shape`` can differ by one frame from the array, so the array decides)."""
    return int(load_codes(cut).shape[0])
