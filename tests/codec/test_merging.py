"""Codec merging (VALL-E R, Sec. 3.2): pooled residual VQ per layer, no codec retraining."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch

from valle.codec import Codec, EncodecCodec, MergedEncodecCodec, encode_merged
from valle.codec.merging import merge_residual
from valle.testing.codec import synthetic_waves, tiny_encodec_codec

LENGTHS = [8_000, 6_171, 3_001, 333]  # 100, 78, 38, 5 frames at hop 80


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run ~20x faster on one thread when the 2 cores are shared (no spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def codec() -> EncodecCodec:
    return tiny_encodec_codec(num_codebooks=4, codebook_size=64, seed=1)


@pytest.fixture(scope="module")
def waves(codec: EncodecCodec) -> list[torch.Tensor]:
    return synthetic_waves(LENGTHS, codec.sample_rate, seed=4)


def _changes(layer_codes: torch.Tensor) -> int:
    return int((layer_codes[1:] != layer_codes[:-1]).sum())


def test_rate_one_everywhere_is_plain_encoding(
    codec: EncodecCodec, waves: list[torch.Tensor]
) -> None:
    plain = codec.encode(waves)
    merged = encode_merged(codec, waves, [1, 1, 1, 1])
    assert all(torch.equal(a, b) for a, b in zip(plain, merged, strict=True))


@pytest.mark.parametrize("rates", [[2, 1, 1, 1], [3, 1, 4, 1], [1, 5, 1, 2]])
def test_merged_layers_are_constant_within_windows(
    codec: EncodecCodec, waves: list[torch.Tensor], rates: list[int]
) -> None:
    plain = codec.encode(waves)
    merged = encode_merged(codec, waves, rates)
    for p, codes in zip(plain, merged, strict=True):
        assert codes.shape == p.shape and codes.dtype == torch.long
        frames = codes.shape[0]
        for q, m in enumerate(rates):
            if m == 1:
                continue
            for start in range(0, frames, m):
                window = codes[start : start + m, q]  # the last window may be partial
                assert (window == window[0]).all(), f"layer {q} varies inside window at {start}"
        if frames > 30:  # merging changes codes, but the merged layer still varies over time
            q = next(i for i, m in enumerate(rates) if m > 1)
            assert _changes(codes[:, q]) < _changes(p[:, q])
            assert codes[:, q].unique().numel() > 3


def test_first_merged_layer_quantizes_window_means(
    codec: EncodecCodec, waves: list[torch.Tensor]
) -> None:
    # Reference written out per window: mean of the encoder output over each window of 3
    # frames (last window: its real frames), then nearest codeword of codebook 0.
    wave = waves[2]  # 38 frames
    codes = encode_merged(codec, [wave], [3, 1, 1, 1])[0]
    ((_, latent, frames),) = list(codec.latents([wave]))
    latent = latent[0, :, : frames[0]].transpose(0, 1)  # (T, D)
    embed = codec.quantizer_layers[0].codebook.embed  # (K, D)
    for start in range(0, latent.shape[0], 3):
        mean = latent[start : start + 3].mean(0)
        distances = (embed - mean).pow(2).sum(1)
        best = distances.min()
        assert distances[codes[start, 0]] <= best + 1e-6
    # Layer 1 sees the residual minus the repeated merged quantization.
    residual = latent - embed[codes[:, 0]]
    embed1 = codec.quantizer_layers[1].codebook.embed
    nearest = torch.cdist(residual, embed1).argmin(1)
    assert (nearest == codes[:, 1]).float().mean() > 0.95


def test_merge_residual_last_window_ignores_padding() -> None:
    residual = torch.arange(2 * 1 * 7, dtype=torch.float32).view(2, 1, 7)  # (B, D, T)
    pooled = merge_residual(residual, 3, frames=[7, 4])
    assert pooled.shape == (2, 1, 3)
    assert pooled[0, 0].tolist() == [1.0, 4.0, 6.0]  # last window is frame 6 alone
    assert pooled[1, 0].tolist() == [8.0, 10.0, 0.0]  # item 1: 4 valid frames, 3 pad


def test_batch_equals_one_by_one(codec: EncodecCodec, waves: list[torch.Tensor]) -> None:
    # In float64 rounding cannot flip near-ties, so any difference would be padding leaking
    # into an item's windows (float32 batched runs differ only at near-ties, see test_encodec).
    codec64 = copy.deepcopy(codec)
    codec64.model.double()
    rates = [2, 1, 3, 1]
    merged = encode_merged(codec64, waves, rates)
    for wave, codes in zip(waves, merged, strict=True):
        assert torch.equal(codes, encode_merged(codec64, [wave], rates)[0])


def test_merged_codec_is_a_codec(codec: EncodecCodec, waves: list[torch.Tensor]) -> None:
    merged = MergedEncodecCodec(codec, [2, 1, 1, 1])
    assert isinstance(merged, Codec)
    assert merged.merge_rates == (2, 1, 1, 1)
    facts = ("sample_rate", "frame_rate", "num_codebooks", "codebook_size")
    assert all(getattr(merged, f) == getattr(codec, f) for f in facts)
    codes = merged.encode(waves[2:])
    assert all(
        torch.equal(a, b)
        for a, b in zip(codes, encode_merged(codec, waves[2:], [2, 1, 1, 1]), strict=True)
    )
    decoded = merged.decode(codes)
    for got, want in zip(decoded, codec.decode(codes), strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ([0, 1, 1, 1], "codebook 0 is invalid"),
        ([1, 1, -2, 1], "codebook 2 is invalid"),
        ([2, 1, 1], "3 entries but the codec has 4"),
        ([2, 1, 1, 1, 1], "5 entries"),
        ([1.5, 1, 1, 1], "integers >= 1"),
        ([True, 1, 1, 1], "integers >= 1"),
        ("2111", "sequence of 4 integers"),
        (2, "sequence of 4 integers"),
    ],
)
def test_invalid_rates_are_refused(
    codec: EncodecCodec, waves: list[torch.Tensor], rates, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MergedEncodecCodec(codec, rates)
    with pytest.raises(ValueError, match=message):
        encode_merged(codec, waves[3:], rates)
