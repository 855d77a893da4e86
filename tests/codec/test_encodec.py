"""EncodecCodec: codec facts from the config, bandwidth -> Q, batch-invariant encode/decode."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import pytest
import torch
from transformers import EncodecConfig, EncodecModel

from valle.codec import Codec, EncodecCodec, encodec_throughput
from valle.testing.codec import (
    init_codebooks,
    non_tie_mismatches,
    synthetic_waves,
    tiny_encodec_codec,
    tiny_encodec_config,
)

# Lengths in samples at 16 kHz (hop 80): not multiples of the hop, one shorter than
# min_batch_frames (7) frames, one a single sample.
LENGTHS = [8_000, 6_171, 3_001, 1_003, 333, 1]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run ~20x faster on one thread when the 2 cores are shared (no spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def codec() -> EncodecCodec:
    return tiny_encodec_codec(num_codebooks=4, codebook_size=64, seed=0)


@pytest.fixture(scope="module")
def codec64(codec: EncodecCodec) -> EncodecCodec:
    """The same codec run in float64: batched and single runs then agree bit for bit unless
    padding leaks into an item (float32 runs differ by ~1e-7 rounding)."""
    doubled = copy.deepcopy(codec)
    doubled.model.double()
    return doubled


@pytest.fixture(scope="module")
def waves(codec: EncodecCodec) -> list[torch.Tensor]:
    return synthetic_waves(LENGTHS, codec.sample_rate, seed=3)


@pytest.fixture(scope="module")
def batch_codes(codec: EncodecCodec, waves: list[torch.Tensor]) -> list[torch.Tensor]:
    return codec.encode(waves)


def test_is_a_codec_with_facts_from_config(codec: EncodecCodec) -> None:
    config = codec.model.config
    assert isinstance(codec, Codec)
    assert codec.sample_rate == config.sampling_rate == 16_000
    assert codec.hop_length == math.prod(config.upsampling_ratios) == 80
    assert codec.frame_rate == pytest.approx(200.0)
    assert codec.codebook_size == config.codebook_size == 64
    assert codec.num_codebooks == 4


def test_other_config_gives_other_facts() -> None:
    config = tiny_encodec_config(num_codebooks=8, codebook_size=32, upsampling_ratios=(4, 4))
    codec = EncodecCodec(EncodecModel(config), bandwidth=config.target_bandwidths[-1])
    assert (codec.frame_rate, codec.codebook_size, codec.num_codebooks) == (1000.0, 32, 8)
    smallest = EncodecCodec(EncodecModel(config), bandwidth=config.target_bandwidths[0])
    assert smallest.num_codebooks == 1


def test_full_size_bandwidths_pick_q() -> None:
    model = EncodecModel(EncodecConfig())  # facebook/encodec_24khz architecture, random weights
    expected = {1.5: 2, 3.0: 4, 6.0: 8, 12.0: 16, 24.0: 32}
    for bandwidth, q in expected.items():
        codec = EncodecCodec(model, bandwidth=bandwidth)
        assert codec.num_codebooks == q
        assert (codec.sample_rate, codec.frame_rate, codec.codebook_size) == (24_000, 75.0, 1024)
    assert EncodecCodec(model, bandwidth=6).num_codebooks == 8  # int accepted
    with pytest.raises(ValueError, match=r"choose one of: 1\.5 kbps -> 2 codebooks.*24 kbps -> 32"):
        EncodecCodec(model, bandwidth=5.0)
    assert EncodecCodec(model).min_batch_frames == 7


def test_rejects_models_needing_scales_or_stereo() -> None:
    small = dict(num_filters=2, hidden_size=8, num_lstm_layers=1, codebook_size=16)
    with pytest.raises(ValueError, match="normalize=True"):
        EncodecCodec(EncodecModel(EncodecConfig(normalize=True, **small)))
    with pytest.raises(ValueError, match="chunk_length_s=1.0"):
        EncodecCodec(EncodecModel(EncodecConfig(chunk_length_s=1.0, overlap=0.01, **small)))
    with pytest.raises(ValueError, match="mono"):
        EncodecCodec(EncodecModel(EncodecConfig(audio_channels=2, **small)))
    with pytest.raises(TypeError, match="EncodecModel"):
        EncodecCodec(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_code_shapes_range_and_variety(
    codec: EncodecCodec, waves: list[torch.Tensor], batch_codes: list[torch.Tensor]
) -> None:
    for wave, codes in zip(waves, batch_codes, strict=True):
        assert codes.dtype == torch.long
        assert codes.shape == (math.ceil(wave.numel() / codec.hop_length), codec.num_codebooks)
        assert 0 <= int(codes.min()) and int(codes.max()) < codec.codebook_size
        assert not codes.is_inference()  # usable in autograd (e.g. as embedding indices)
    first = batch_codes[0]
    for q in range(codec.num_codebooks):
        assert first[:, q].unique().numel() >= 10, f"codebook {q} codes barely vary"


def test_batch_equals_one_by_one_exactly_in_float64(
    codec64: EncodecCodec, waves: list[torch.Tensor]
) -> None:
    waves = waves[1:]  # float64 is slow on CPU: skip the longest
    batch = codec64.encode(waves)
    for wave, codes in zip(waves, batch, strict=True):
        assert torch.equal(codes, codec64.encode([wave])[0])
    decoded = codec64.decode(batch)
    for codes, wave in zip(batch, decoded, strict=True):
        assert torch.equal(wave, codec64.decode([codes])[0])


def test_batch_equals_one_by_one_in_float32(
    codec: EncodecCodec, waves: list[torch.Tensor], batch_codes: list[torch.Tensor]
) -> None:
    # Encoder outputs agree to float rounding; codes agree except at near-ties.
    batch_latents = {}
    for group, latent, frames in codec.latents(waves):
        for j, i in enumerate(group):
            batch_latents[i] = latent[j, :, : frames[j]]
    total = differing = 0
    for i, wave in enumerate(waves):
        ((_, alone_latent, frames),) = list(codec.latents([wave]))
        torch.testing.assert_close(
            batch_latents[i], alone_latent[0, :, : frames[0]], atol=1e-5, rtol=1e-4
        )
        alone = codec.encode([wave])[0]
        assert non_tie_mismatches(codec, wave, batch_codes[i], alone) == []
        total += alone.numel()
        differing += int((alone != batch_codes[i]).sum())
    assert differing <= 0.05 * total


def test_tie_check_flags_real_mismatches(
    codec: EncodecCodec, waves: list[torch.Tensor], batch_codes: list[torch.Tensor]
) -> None:
    altered = batch_codes[1].clone()
    altered[5, 0] = (altered[5, 0] + 1) % codec.codebook_size
    altered[9, 2] = (altered[9, 2] + 7) % codec.codebook_size
    assert non_tie_mismatches(codec, waves[1], altered, batch_codes[1]) == [(5, 0), (9, 2)]


def test_short_items_would_leak_without_the_guard(
    codec: EncodecCodec, waves: list[torch.Tensor]
) -> None:
    # The guard (short items run alone) is needed: the reflect padding of EnCodec's first
    # outputs reads ahead, so a 3-frame item batched with a long one gets different latents.
    assert codec.min_batch_frames == 7
    short = synthetic_waves([3 * codec.hop_length], codec.sample_rate, seed=9)[0]
    ((_, alone, _),) = list(codec.latents([short]))
    saved = codec._min_batch_frames
    try:
        codec._min_batch_frames = 1
        ((_, batched, _),) = list(codec.latents([waves[0], short]))
    finally:
        codec._min_batch_frames = saved
    assert (batched[1, :, :3] - alone[0, :, :3]).abs().max() > 1e-3


def test_decode_lengths_and_batch_invariance(
    codec: EncodecCodec, batch_codes: list[torch.Tensor]
) -> None:
    decoded = codec.decode(batch_codes)
    for codes, wave in zip(batch_codes, decoded, strict=True):
        assert wave.shape == (codes.shape[0] * codec.hop_length,)
        assert wave.dtype == torch.float32 and torch.isfinite(wave).all()
        torch.testing.assert_close(wave, codec.decode([codes])[0], atol=1e-5, rtol=1e-4)
    # Fewer codebooks (Q' < Q) decode too, and change the output.
    coarse = codec.decode([c[:, :2] for c in batch_codes[:2]])
    assert coarse[0].shape == decoded[0].shape
    assert not torch.allclose(coarse[0], decoded[0])


def test_bad_inputs_get_clear_errors(codec: EncodecCodec) -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        codec.encode([])
    with pytest.raises(ValueError, match="1-D tensor"):
        codec.encode([torch.zeros(2, 100)])
    with pytest.raises(ValueError, match="empty"):
        codec.encode([torch.zeros(0)])
    with pytest.raises(ValueError, match="float"):
        codec.encode([torch.zeros(100, dtype=torch.int16)])
    with pytest.raises(ValueError, match="1 <= Q' <= 4"):
        codec.decode([torch.zeros(5, 5, dtype=torch.long)])
    with pytest.raises(ValueError, match=r"outside \[0, 64\)"):
        codec.decode([torch.full((5, 4), 64)])
    with pytest.raises(ValueError, match="same Q'"):
        codec.decode([torch.zeros(5, 4, dtype=torch.long), torch.zeros(5, 3, dtype=torch.long)])


def test_from_pretrained_local_directory(
    tmp_path, codec: EncodecCodec, waves: list[torch.Tensor]
) -> None:
    codec.model.save_pretrained(tmp_path)
    loaded = EncodecCodec.from_pretrained(tmp_path, bandwidth=codec.bandwidth)
    assert loaded.num_codebooks == codec.num_codebooks
    assert torch.equal(loaded.encode(waves[:2])[1], codec.encode(waves[:2])[1])
    smaller = EncodecCodec.from_pretrained(
        str(tmp_path), bandwidth=codec.model.config.target_bandwidths[0]
    )
    assert smaller.num_codebooks == 1
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        EncodecCodec.from_pretrained(tmp_path / "missing")


def test_non_causal_model_runs_items_alone() -> None:
    config = tiny_encodec_config(num_codebooks=2, codebook_size=16, upsampling_ratios=(4, 4))
    config.use_causal_conv = False
    torch.manual_seed(0)
    model = EncodecModel(config).eval()
    init_codebooks(model, synthetic_waves([4000], config.sampling_rate), iters=2)
    codec = EncodecCodec(model, bandwidth=config.target_bandwidths[-1])
    assert codec.min_batch_frames is None
    waves = synthetic_waves([1000, 333], config.sampling_rate, seed=1)
    batch = codec.encode(waves)
    for wave, codes in zip(waves, batch, strict=True):
        assert torch.equal(codes, codec.encode([wave])[0])


def test_throughput_reports_speed(codec: EncodecCodec) -> None:
    result = encodec_throughput(codec, seconds=0.25, batch=2, repeats=1)
    assert result["audio_seconds"] == pytest.approx(0.5)
    for key in ("encode_audio_s_per_s", "decode_audio_s_per_s"):
        assert result[key] > 0 and math.isfinite(result[key])
    assert result["encode_rtf"] == pytest.approx(1 / result["encode_audio_s_per_s"])


def test_codebook_init_makes_random_models_usable() -> None:
    config = tiny_encodec_config(num_codebooks=2, codebook_size=32)
    torch.manual_seed(0)
    model = EncodecModel(config).eval()
    codec = EncodecCodec(model, bandwidth=config.target_bandwidths[-1])
    wave = synthetic_waves([4000], config.sampling_rate, seed=2)[0]
    assert codec.encode([wave])[0].unique().tolist() == [0]  # transformers zero-inits codebooks
    init_codebooks(model, synthetic_waves([8000, 8000], config.sampling_rate), iters=3)
    codes = codec.encode([wave])[0]
    assert all(codes[:, q].unique().numel() >= 8 for q in range(2))
