"""Random-weight EnCodec codecs for tests and speed benchmarks, and synthetic test audio.

Shape legend: B batch, N samples, T frames, Q codebooks, D latent dim, K codebook entries.

``transformers`` initialises EnCodec codebooks to zeros, so a random-weight model maps every
frame to code 0. ``init_codebooks`` fixes that with a few k-means (Lloyd) steps per RVQ layer on
encoder outputs of a little synthetic audio, layer after layer on the running residual, so the
codes of a random model are varied like those of a trained one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from valle.codec.encodec import EncodecCodec

if TYPE_CHECKING:
    from transformers import EncodecConfig, EncodecModel

logger = logging.getLogger(__name__)

__all__ = [
    "init_codebooks",
    "non_tie_mismatches",
    "random_full_encodec_codec",
    "synthetic_waves",
    "tiny_encodec_codec",
    "tiny_encodec_config",
    "tiny_mel_rvq_codec",
]


def synthetic_waves(lengths: Sequence[int], sample_rate: int, seed: int = 0) -> list[torch.Tensor]:
    """Speech-like test waves: a gliding harmonic tone with syllable-rate envelope plus noise.

    Args:
        lengths: samples per wave.
        sample_rate: Hz.
        seed: makes the waves reproducible.
    Returns:
        list of float tensors ``(N_b,)`` in about [-0.6, 0.6].
    """
    gen = torch.Generator().manual_seed(seed)
    waves = []
    for n in lengths:
        t = torch.arange(int(n), dtype=torch.float64) / sample_rate
        f0 = 100 + 80 * torch.rand((), generator=gen, dtype=torch.float64)
        rate = 2 + 3 * torch.rand((), generator=gen, dtype=torch.float64)
        pitch = f0 * (1 + 0.2 * torch.sin(2 * math.pi * 0.7 * t))
        phase = 2 * math.pi * torch.cumsum(pitch, 0) / sample_rate
        voiced = sum(torch.sin(k * phase) / k for k in range(1, 6))
        envelope = 0.5 * (1 - torch.cos(2 * math.pi * rate * t))
        noise = 0.05 * torch.randn(int(n), generator=gen, dtype=torch.float64)
        waves.append((0.25 * envelope * voiced + noise).float())
    return waves


def _bandwidths_for(num_codebooks: int, codebook_size: int, frame_rate: int) -> list[float]:
    """Bandwidths (kbps) giving Q = 1, 2, 4, ... num_codebooks codebooks (as EnCodec counts)."""
    per_codebook = math.log2(codebook_size) * frame_rate  # bits per second
    counts = sorted({q for q in (2**i for i in range(8)) if q < num_codebooks} | {num_codebooks})
    # Half a codebook of headroom keeps floor(bandwidth / per_codebook) safe from rounding.
    return [round((q + 0.5) * per_codebook / 1000, 6) for q in counts]


def tiny_encodec_config(
    num_codebooks: int = 4,
    codebook_size: int = 64,
    hidden_size: int = 16,
    num_filters: int = 4,
    sample_rate: int = 16_000,
    upsampling_ratios: Sequence[int] = (5, 4, 4),
) -> EncodecConfig:
    """A small causal EnCodec config (16 kHz, hop 80 -> 200 Hz frames by default).

    ``target_bandwidths`` are set so the largest one gives ``num_codebooks`` codebooks.
    """
    from transformers import EncodecConfig

    hop = math.prod(upsampling_ratios)
    if sample_rate % hop:
        raise ValueError(f"sample_rate {sample_rate} must be a multiple of the hop length {hop}.")
    return EncodecConfig(
        target_bandwidths=_bandwidths_for(num_codebooks, codebook_size, sample_rate // hop),
        sampling_rate=sample_rate,
        hidden_size=hidden_size,
        num_filters=num_filters,
        upsampling_ratios=list(upsampling_ratios),
        num_lstm_layers=1,
        codebook_size=codebook_size,
    )


@torch.no_grad()
def init_codebooks(
    model: EncodecModel,
    waves: Sequence[torch.Tensor],
    iters: int = 5,
    seed: int = 0,
) -> None:
    """Set every RVQ codebook of ``model`` by k-means on encoder outputs of ``waves``.

    Layer ``i`` is fitted on the residual left by layers ``< i`` (as RVQ training does).
    Centroids start from randomly chosen frames (with a little noise when there are fewer
    frames than entries); empty clusters keep their previous centroid.
    """
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    latents = []
    for wave in waves:
        x = wave.to(device=device, dtype=torch.float32).view(1, 1, -1)  # (1, 1, N)
        latents.append(model.encoder(x)[0].transpose(0, 1).cpu())  # (T, D)
    residual = torch.cat(latents)  # (sum T, D)
    for layer in model.quantizer.layers:
        book: Any = layer.codebook
        k = int(book.embed.shape[0])
        if residual.shape[0] >= k:
            pick = torch.randperm(residual.shape[0], generator=gen)[:k]
        else:
            pick = torch.randint(0, residual.shape[0], (k,), generator=gen)
        std = residual.std(0, keepdim=True).clamp_min(1e-8)
        centroids = residual[pick] + 0.1 * std * torch.randn(k, residual.shape[1], generator=gen)
        for _ in range(iters):
            assign = torch.cdist(residual, centroids).argmin(1)  # (sum T,)
            sums = torch.zeros_like(centroids).index_add_(0, assign, residual)
            counts = torch.bincount(assign, minlength=k).unsqueeze(1)
            centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        book.embed.copy_(centroids.to(book.embed))
        book.embed_avg.copy_(centroids.to(book.embed_avg))
        book.cluster_size.fill_(1.0)
        residual = residual - centroids[torch.cdist(residual, centroids).argmin(1)]
    logger.debug(
        "initialised %d codebooks from %d frames", len(model.quantizer.layers), len(residual)
    )


def _random_codec(
    config: EncodecConfig, seconds: float, bandwidth: float | None, seed: int
) -> EncodecCodec:
    from transformers import EncodecModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EncodecModel(config).eval()
    sr = config.sampling_rate
    waves = synthetic_waves([int(seconds * sr)] * 4, sr, seed=seed + 1)
    init_codebooks(model, waves, seed=seed)
    if bandwidth is None:
        bandwidth = float(config.target_bandwidths[-1])
    return EncodecCodec(model, bandwidth=bandwidth)


def tiny_encodec_codec(
    num_codebooks: int = 4,
    codebook_size: int = 64,
    bandwidth: float | None = None,
    seed: int = 0,
) -> EncodecCodec:
    """A tiny random-weight EnCodec codec (16 kHz, 200 Hz frames), fast on CPU.

    Uses ``num_codebooks`` codebooks unless ``bandwidth`` picks fewer; codes are varied.
    """
    config = tiny_encodec_config(num_codebooks=num_codebooks, codebook_size=codebook_size)
    return _random_codec(config, seconds=1.0, bandwidth=bandwidth, seed=seed)


def random_full_encodec_codec(bandwidth: float = 6.0, seed: int = 0) -> EncodecCodec:
    """Full-size 24 kHz EnCodec (default ``EncodecConfig``) with random weights, for benchmarks.

    Same architecture and cost as facebook/encodec_24khz; codebooks k-means initialised.
    """
    from transformers import EncodecConfig

    return _random_codec(EncodecConfig(), seconds=5.0, bandwidth=bandwidth, seed=seed)


@torch.no_grad()
def non_tie_mismatches(
    codec: EncodecCodec,
    wave: torch.Tensor,
    codes: torch.Tensor,
    reference: torch.Tensor,
    latent_atol: float = 1e-6,
) -> list[tuple[int, int]]:
    """Frames where ``codes`` and ``reference`` (both ``(T, Q)`` for ``wave``) differ for a
    reason other than float rounding.

    Batched and single-item runs may differ by ~1e-7 in the encoder output (different kernels),
    which can flip a nearest-codeword choice when two codewords are almost equally near. For each
    frame, the first layer where the two disagree is walked to with ``reference`` on the wave's
    own latents; the frame counts as a real mismatch unless a perturbation of at most
    ``latent_atol`` per latent entry could swap the two codewords' order of distance there.
    Later layers of a tied frame are allowed to differ (their residuals differ).

    Returns:
        list of (frame, layer) of real mismatches; empty when the codes agree up to ties.
    """
    if codes.shape != reference.shape:
        return [(-1, -1)]
    differs = codes != reference  # (T, Q)
    if not bool(differs.any()):
        return []
    ((_, latent, frames),) = list(codec.latents([wave]))
    residual = latent[0, :, : frames[0]].transpose(0, 1)  # (T, D)
    bad = []
    for t in torch.nonzero(differs.any(1)).flatten().tolist():
        r = residual[t]
        q_first = int(torch.nonzero(differs[t]).flatten()[0])
        for q, layer in enumerate(codec.quantizer_layers[:q_first]):
            r = r - layer.codebook.embed[reference[t, q]]
        embed = codec.quantizer_layers[q_first].codebook.embed
        e_got, e_ref = embed[codes[t, q_first]], embed[reference[t, q_first]]
        gap = abs(float((r - e_got).pow(2).sum() - (r - e_ref).pow(2).sum()))
        # A perturbation delta of r moves the gap by at most 2 |delta| |e_got - e_ref|; the
        # quantizer's own distance arithmetic (|x|^2 - 2 x.e + |e|^2) errs by ~eps |x|^2.
        slack = 2 * latent_atol * math.sqrt(r.numel()) * float((e_got - e_ref).norm())
        norms = float(r.pow(2).sum() + e_got.pow(2).sum() + e_ref.pow(2).sum())
        slack += 8 * torch.finfo(r.dtype).eps * norms
        if gap > slack:
            bad.append((t, q_first))
    return bad


def tiny_mel_rvq_codec(
    num_codebooks: int = 4, codebook_size: int = 16, n_mels: int = 16, seed: int = 0
) -> Any:
    """A random mel-RVQ codec (16 kHz, hop 200 -> 80 Hz frames, 4-iteration Griffin-Lim),
    built from random tensors without fitting: for tests of saving, embedding and loading."""
    from valle.codec.mel import MelConfig
    from valle.codec.mel_rvq import MelRVQCodec, MelRVQConfig

    gen = torch.Generator().manual_seed(seed)
    mel = MelConfig(n_fft=512, win_length=512, hop_length=200, n_mels=n_mels)
    config = MelRVQConfig(
        mel=mel,
        num_codebooks=num_codebooks,
        codebook_size=codebook_size,
        max_fit_frames=max(codebook_size, 1000),
        griffin_lim_iters=4,
    )
    mean = torch.randn(n_mels, generator=gen) - 4.0  # (F,)
    std = torch.rand(n_mels, generator=gen) + 0.5  # (F,)
    scale = 0.5 ** torch.arange(num_codebooks, dtype=torch.float32)  # smaller residual stages
    books = torch.randn(num_codebooks, codebook_size, n_mels, generator=gen) * scale[:, None, None]
    return MelRVQCodec(config, mean, std, books)  # codebooks (Q, K, F)
