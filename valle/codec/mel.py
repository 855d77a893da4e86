"""Log-mel front end on ``torch.stft`` (no torchaudio).

Shape legend: B batch, N samples, T frames, F mel bins, K linear frequency bins (n_fft // 2 + 1).

Frame count rule: the STFT is centred (the wave is reflect-padded by ``n_fft // 2`` on both
sides), so a wave of ``N`` samples gives ``T = 1 + N // hop_length`` frames; frame ``t`` is
centred on sample ``t * hop_length``. ``LogMel.num_frames(N)`` computes it.

The mel filterbank is ``transformers.audio_utils.mel_filter_bank`` (HTK or Slaney mel scale,
optional Slaney area normalisation), so a ``MelConfig`` can reproduce the features a pretrained
vocoder was trained on exactly (see ``MelConfig.speecht5``).

MELLE (Meng et al., 2024, section 3) models 80-bin log-mel frames; the default here is 80 bins.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["MelConfig", "LogMel"]


@dataclass(frozen=True)
class MelConfig:
    """Parameters of a log-mel spectrogram.

    Attributes:
        sample_rate: Hz of the input waves.
        n_fft: FFT size in samples (linear bins K = n_fft // 2 + 1).
        win_length: Hann window length in samples, ``<= n_fft`` (zero-padded to n_fft).
        hop_length: frame shift in samples; frame rate = sample_rate / hop_length.
        n_mels: F, number of mel bins.
        fmin: lowest mel filter edge in Hz.
        fmax: highest mel filter edge in Hz; ``None`` means sample_rate / 2.
        mel_scale: ``"htk"`` or ``"slaney"`` mel frequency warping.
        norm: ``"slaney"`` (area-normalised triangles) or ``None`` (peak 1).
        power: 1.0 magnitude, 2.0 power spectrum before the filterbank.
        log_base: ``"e"`` natural log or ``"10"`` log10.
        log_floor: mel values are clamped to at least this before the log.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 200
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    mel_scale: Literal["htk", "slaney"] = "slaney"
    norm: Literal["slaney"] | None = "slaney"
    power: float = 1.0
    log_base: Literal["e", "10"] = "e"
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(
                f"MelConfig: sample_rate, hop_length and n_mels must be > 0, got {self}"
            )
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError(
                f"MelConfig: need 0 < win_length ({self.win_length}) <= n_fft ({self.n_fft})"
            )
        fmax = self.sample_rate / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < fmax <= self.sample_rate / 2:
            raise ValueError(
                f"MelConfig: need 0 <= fmin ({self.fmin}) < fmax ({fmax}) <= sample_rate/2 "
                f"({self.sample_rate / 2})"
            )
        if self.mel_scale not in ("htk", "slaney"):
            raise ValueError(
                f"MelConfig: mel_scale must be 'htk' or 'slaney', got {self.mel_scale!r}"
            )
        if self.norm not in (None, "slaney"):
            raise ValueError(f"MelConfig: norm must be None or 'slaney', got {self.norm!r}")
        if self.log_base not in ("e", "10"):
            raise ValueError(f"MelConfig: log_base must be 'e' or '10', got {self.log_base!r}")
        if self.power not in (1.0, 2.0):
            raise ValueError(f"MelConfig: power must be 1.0 or 2.0, got {self.power}")
        if self.log_floor <= 0:
            raise ValueError(f"MelConfig: log_floor must be > 0, got {self.log_floor}")

    @property
    def frame_rate(self) -> float:
        """Mel frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def max_frequency(self) -> float:
        """The highest mel filter edge in Hz (``fmax``, or sample_rate / 2 when None)."""
        return self.sample_rate / 2 if self.fmax is None else float(self.fmax)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MelConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(
                f"MelConfig: unknown keys {sorted(unknown)}; known keys: {sorted(names)}"
            )
        return cls(**d)

    @classmethod
    def speecht5(cls) -> MelConfig:
        """The features of ``microsoft/speecht5_hifigan`` (``SpeechT5FeatureExtractor`` targets).

        16 kHz, 64 ms Hann window (1024 samples, n_fft 1024), 16 ms hop (256 samples), 80 Slaney
        mel bins on 80-7600 Hz with Slaney normalisation, magnitude, log10 with floor 1e-10.
        """
        return cls(
            sample_rate=16000,
            n_fft=1024,
            win_length=1024,
            hop_length=256,
            n_mels=80,
            fmin=80.0,
            fmax=7600.0,
            mel_scale="slaney",
            norm="slaney",
            power=1.0,
            log_base="10",
            log_floor=1e-10,
        )


def _mel_filters(cfg: MelConfig) -> torch.Tensor:
    """Mel filterbank ``(K, F)`` (float32)."""
    from transformers.audio_utils import mel_filter_bank

    fb = mel_filter_bank(
        num_frequency_bins=cfg.n_fft // 2 + 1,
        num_mel_filters=cfg.n_mels,
        min_frequency=cfg.fmin,
        max_frequency=cfg.max_frequency,
        sampling_rate=cfg.sample_rate,
        norm=cfg.norm,
        mel_scale=cfg.mel_scale,
    )
    return torch.from_numpy(fb).float()  # (K, F)


class LogMel(nn.Module):
    """Wave ``(B, N)`` or ``(N,)`` -> log-mel ``(B, T, F)`` with ``T = 1 + N // hop_length``.

    ``forward`` always returns a batch dimension. ``to_linear``-style inversions live in
    ``valle.codec.vocoder``; this module also exposes the pieces they need (``window``,
    ``mel_basis``, ``magnitude``, ``log``/``exp``).
    """

    window: torch.Tensor
    mel_basis: torch.Tensor

    def __init__(self, config: MelConfig | None = None) -> None:
        super().__init__()
        self.config = config or MelConfig()
        self.register_buffer(
            "window", torch.hann_window(self.config.win_length, periodic=True), persistent=False
        )
        self.register_buffer("mel_basis", _mel_filters(self.config), persistent=False)  # (K, F)

    # --- codec facts -------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a wave of ``num_samples`` samples: ``1 + N // hop_length``."""
        return 1 + num_samples // self.config.hop_length

    # --- pieces ------------------------------------------------------------------------------
    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``(B, K, T)`` of ``(B, N)`` or ``(N,)`` (centred, reflect padding)."""
        cfg = self.config
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)  # (1, N)
        if wave.shape[-1] <= cfg.n_fft // 2:
            # reflect padding needs more samples than the pad; zero-pad very short input instead
            pad = cfg.n_fft // 2 + 1 - wave.shape[-1]
            n = wave.shape[-1]
            spec = torch.stft(
                nn.functional.pad(wave, (0, pad)),
                n_fft=cfg.n_fft,
                hop_length=cfg.hop_length,
                win_length=cfg.win_length,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            return spec[..., : self.num_frames(n)]
        return torch.stft(
            wave,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """Linear magnitude (power ``config.power``) spectrogram ``(B, T, K)``."""
        spec = self.stft(wave).abs()  # (B, K, T)
        if self.config.power == 2.0:
            spec = spec.pow(2)
        return spec.transpose(1, 2)  # (B, T, K)

    def log(self, mel: torch.Tensor) -> torch.Tensor:
        """Linear mel -> log mel with the configured floor and base."""
        out = mel.clamp_min(self.config.log_floor).log()
        return out / math.log(10.0) if self.config.log_base == "10" else out

    def exp(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Inverse of ``log`` (above the floor)."""
        if self.config.log_base == "10":
            return torch.pow(10.0, log_mel)
        return log_mel.exp()

    @property
    def log_floor_value(self) -> float:
        """The log-mel value of silence (the floor), e.g. for padding."""
        return float(self.log(torch.tensor(0.0)))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram.

        Args:
            wave: float ``(B, N)`` or ``(N,)`` at ``sample_rate``.
        Returns:
            ``(B, T, F)`` with ``T = 1 + N // hop_length``.
        """
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)  # (1, N)
        if wave.dim() != 2:
            raise ValueError(f"LogMel expects a wave (N,) or (B, N), got shape {tuple(wave.shape)}")
        if not wave.is_floating_point():
            raise TypeError(f"LogMel expects a float wave in [-1, 1], got dtype {wave.dtype}")
        if wave.shape[-1] == 0:
            raise ValueError("LogMel got an empty wave (0 samples)")
        mag = self.magnitude(wave.float())  # (B, T, K)
        mel = mag @ self.mel_basis  # (B, T, F)
        return self.log(mel)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"sr={c.sample_rate}, n_fft={c.n_fft}, win={c.win_length}, hop={c.hop_length}, "
            f"n_mels={c.n_mels}, fmin={c.fmin}, fmax={c.fmax}, scale={c.mel_scale}, log={c.log_base}"
        )
