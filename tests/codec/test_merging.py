"""Codec merging (VALL-E R, Sec. 3.2): pooled residual VQ per layer, no codec retraining, for
EnCodec and the offline mel-RVQ codec; the merged codecs in the codec registry."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch

from valle.codec import Codec, EncodecCodec, MergedRVQCodec, encode_merged
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
    merged = MergedRVQCodec(codec, [2, 1, 1, 1])
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
        MergedRVQCodec(codec, rates)
    with pytest.raises(ValueError, match=message):
        encode_merged(codec, waves[3:], rates)


def test_a_codec_without_residual_vq_is_refused(waves: list[torch.Tensor]) -> None:
    class Plain:  # a Codec with no RVQ to merge
        sample_rate, frame_rate, num_codebooks, codebook_size = 16000, 80.0, 4, 16

        def encode(self, wavs):
            return []

        def decode(self, codes):
            return []

    with pytest.raises(TypeError, match="latents.*quantizer_layers"):
        MergedRVQCodec(Plain(), [2, 1, 1, 1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot be merged"):
        encode_merged(Plain(), waves[3:], [2, 1, 1, 1])  # type: ignore[arg-type]


# ------------------------------------------------------------------ the offline mel-RVQ codec

MEL_LENGTHS = [16_000, 12_345, 4_001, 401]  # 80, 62, 21, 3 frames at hop 200


@pytest.fixture(scope="module")
def mel_waves() -> list[torch.Tensor]:
    return synthetic_waves(MEL_LENGTHS, 16_000, seed=5)


@pytest.fixture(scope="module")
def mel_codec(mel_waves):
    """A tiny mel-RVQ codec (4 x 16, 16 mel bins) fitted on other waves of the same kind."""
    from valle.codec.mel_rvq import MelRVQCodec
    from valle.testing.codec import tiny_mel_rvq_codec

    config = tiny_mel_rvq_codec(num_codebooks=4, codebook_size=16, n_mels=16).config
    return MelRVQCodec.fit(synthetic_waves([16_000] * 3, 16_000, seed=9), config)


def test_mel_rvq_rate_one_is_plain_encoding_bit_for_bit(mel_codec, mel_waves) -> None:
    plain = mel_codec.encode(mel_waves)
    merged = MergedRVQCodec(mel_codec, [1, 1, 1, 1]).encode(mel_waves)
    assert [c.shape for c in merged] == [c.shape for c in plain]
    assert all(torch.equal(a, b) for a, b in zip(plain, merged, strict=True))


def test_mel_rvq_rate_two_merges_codebook_one_over_two_frame_windows(mel_codec, mel_waves) -> None:
    plain = mel_codec.encode(mel_waves)
    merged = MergedRVQCodec(mel_codec, [2, 1, 1, 1]).encode(mel_waves)
    for p, codes, n in zip(plain, merged, MEL_LENGTHS, strict=True):
        frames = mel_codec.num_frames(n)
        assert codes.shape == p.shape == (frames, 4) and codes.dtype == torch.long
        first = codes[:, 0]
        assert torch.equal(first[0::2][: frames // 2], first[1::2])  # frames 2k and 2k + 1
        if frames > 30:
            assert _changes(first) < _changes(p[:, 0])  # merged, yet still varying
            assert first.unique().numel() > 3
            assert _changes(codes[:, 1]) > frames // 2  # codebook 2 keeps one code per frame
        # Reference from the definition: nearest codeword of the mean of the normalised mel
        # over each window (the last, partial window: its real frames only).
        z = mel_codec.normalize(mel_codec.wave_to_mel(mel_waves[MEL_LENGTHS.index(n)]))  # (T, F)
        book = mel_codec.codebooks[0]  # (K, F)
        for start in range(0, frames, 2):
            mean = z[start : start + 2].mean(0)
            distances = (book - mean).pow(2).sum(1)
            assert distances[first[start]] <= distances.min() + 1e-5
        # Codebook 2 quantises what the repeated merged codeword leaves.
        nearest = torch.cdist(z - book[first], mel_codec.codebooks[1]).argmin(1)
        assert (nearest == codes[:, 1]).float().mean() > 0.95


def test_mel_rvq_merged_decodes_as_the_base(mel_codec, mel_waves) -> None:
    merged = MergedRVQCodec(mel_codec, [2, 1, 1, 1])
    codes = merged.encode(mel_waves[2:])
    for got, want in zip(merged.decode(codes), mel_codec.decode(codes), strict=True):
        torch.testing.assert_close(got, want)
    facts = ("sample_rate", "frame_rate", "num_codebooks", "codebook_size")
    assert all(getattr(merged, f) == getattr(mel_codec, f) for f in facts)
    assert isinstance(merged, Codec)


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ([0, 1, 1, 1], "codebook 0 is invalid"),
        ([2, 1, 1], "3 entries but the codec has 4"),
        ([2.0, 1, 1, 1], "integers >= 1"),
        (2, "sequence of 4 integers"),
    ],
)
def test_mel_rvq_bad_rates_are_refused(mel_codec, mel_waves, rates, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MergedRVQCodec(mel_codec, rates)
    with pytest.raises(ValueError, match=message):
        encode_merged(mel_codec, mel_waves[3:], rates)


# ------------------------------------------------------------------ registry and codec.json


def test_merged_codecs_are_registered_and_load_with_their_rates(mel_codec, mel_waves, tmp_path):
    from valle.codec.registry import load_codec, recognize_codec_dir, registered_codecs

    assert {"mel_rvq_merged", "encodec_merged"} <= set(registered_codecs())
    mel_codec.save(tmp_path / "mel")
    codec = load_codec("mel_rvq_merged", tmp_path / "mel", merge_rates=[2, 1, 1, 1])
    assert isinstance(codec, MergedRVQCodec) and codec.merge_rates == (2, 1, 1, 1)
    want = MergedRVQCodec(mel_codec, [2, 1, 1, 1]).encode(mel_waves)
    assert all(torch.equal(a, b) for a, b in zip(codec.encode(mel_waves), want, strict=True))
    # a bare directory stays the plain codec's
    assert recognize_codec_dir(tmp_path / "mel") == ("mel_rvq", {})
    with pytest.raises(ValueError, match="needs the option merge_rates"):
        load_codec("mel_rvq_merged", tmp_path / "mel")
    with pytest.raises(ValueError, match="codebook 0 is invalid"):
        load_codec("mel_rvq_merged", tmp_path / "mel", merge_rates=[0, 1, 1, 1])


def test_codec_info_and_checkpoint_round_trip(mel_codec, mel_waves, tmp_path) -> None:
    from valle.codec.registry import codec_from_embedded, embed_codec, is_embeddable
    from valle.data.codec_info import CodecInfo
    from valle.inference.codec_spec import codec_from_dir

    mel_codec.save(tmp_path / "mel")
    rates = [2, 1, 1, 1]
    codec = MergedRVQCodec(mel_codec, rates)
    want = codec.encode(mel_waves)
    info = CodecInfo.from_codec(codec, "mel_rvq_merged", tmp_path / "mel", merge_rates=rates)
    info.to_file(tmp_path / "data" / "codec.json")
    back = CodecInfo.from_file(tmp_path / "data" / "codec.json")
    assert back == info and back.options == {"merge_rates": rates}
    for reloaded in (back.load_codec(), codec_from_dir(tmp_path / "data")):
        assert isinstance(reloaded, MergedRVQCodec) and reloaded.merge_rates == tuple(rates)
        got = reloaded.encode(mel_waves)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert is_embeddable("mel_rvq_merged") and not is_embeddable("encodec_merged")
    entry = embed_codec("mel_rvq_merged", codec)
    assert entry is not None
    rebuilt = codec_from_embedded(entry)
    assert isinstance(rebuilt, MergedRVQCodec) and rebuilt.merge_rates == tuple(rates)
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.encode(mel_waves), want, strict=True))


def test_encodec_merged_loads_from_a_saved_model(codec: EncodecCodec, waves, tmp_path) -> None:
    from valle.codec.registry import load_codec

    codec.model.save_pretrained(tmp_path / "encodec")
    merged = load_codec(
        "encodec_merged", tmp_path / "encodec", bandwidth=codec.bandwidth, merge_rates=[2, 1, 1, 1]
    )
    assert isinstance(merged, MergedRVQCodec) and merged.num_codebooks == 4
    want = encode_merged(codec, waves[2:], [2, 1, 1, 1])
    assert all(torch.equal(a, b) for a, b in zip(merged.encode(waves[2:]), want, strict=True))


def test_the_mini_recipe_codec_specs(mel_codec) -> None:
    """conf/codec_mel_rvq{,_merged}.yaml name registered codecs with one rate per codebook of
    the codec conf/mel_rvq.yaml fits, merging codebook 1 at m_1 = 2 (VALL-E R)."""
    from pathlib import Path

    from valle.codec.registry import read_codec_choice
    from valle.data.codec_fit import load_mel_rvq_config

    conf = Path(__file__).resolve().parents[2] / "egs" / "mini" / "conf"
    assert read_codec_choice(conf / "codec_mel_rvq.yaml") == ("mel_rvq", {})
    name, options = read_codec_choice(conf / "codec_mel_rvq_merged.yaml")
    q = load_mel_rvq_config(conf / "mel_rvq.yaml").num_codebooks
    assert name == "mel_rvq_merged" and options == {"merge_rates": [2] + [1] * (q - 1)}


def test_read_codec_choice_errors(tmp_path) -> None:
    from valle.codec.registry import UnknownCodecError, read_codec_choice

    bad = tmp_path / "c.yaml"
    bad.write_text("name: nope\n")
    with pytest.raises(UnknownCodecError, match="mel_rvq_merged"):
        read_codec_choice(bad)
    bad.write_text("name: mel_rvq\nmerge_rates: [2]\n")
    with pytest.raises(ValueError, match="unknown keys \\['merge_rates'\\]"):
        read_codec_choice(bad)
    with pytest.raises(FileNotFoundError):
        read_codec_choice(tmp_path / "missing.yaml")


def test_tokenize_cli_encodes_merged_codes_from_a_codec_spec(mel_codec, tmp_path) -> None:
    """valle.bin.tokenize codes --codec-spec (what egs/mini/prepare.sh stage 2 passes):
    codec.json records the merged codec and its rates; codebook 1 is constant over 2 frames."""
    from lhotse import CutSet

    from tests.data.factories import make_cuts
    from valle.bin.tokenize import main
    from valle.data.codec_info import CodecInfo
    from valle.data.prompt import load_codes

    make_cuts(tmp_path / "wav", speakers=1, utts=3).to_file(tmp_path / "cuts.jsonl.gz")
    mel_codec.save(tmp_path / "mel")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: mel_rvq_merged\noptions:\n  merge_rates: [2, 1, 1, 1]\n")
    common = ["codes", "--cuts", str(tmp_path / "cuts.jsonl.gz"), "--codec-path",
              str(tmp_path / "mel"), "--prefix", "t", "--chunk-size", "2"]  # fmt: skip
    out = tmp_path / "tok"
    assert main([*common, "--codec-spec", str(spec), "--output-dir", str(out)]) == 0
    info = CodecInfo.from_file(out / "codec.json")
    assert info.name == "mel_rvq_merged" and info.options == {"merge_rates": [2, 1, 1, 1]}
    cuts = CutSet.from_file(out / "t_cuts_codes.jsonl.gz")
    for cut in cuts:
        first = load_codes(cut)[:, 0]
        assert torch.equal(first[0::2][: first.shape[0] // 2], first[1::2])
    assert main([*common, "--codec-spec", str(spec), "--codec", "mel_rvq",
                 "--output-dir", str(tmp_path / "x")]) == 1  # fmt: skip
    assert main([*common, "--output-dir", str(tmp_path / "y")]) == 1  # neither
