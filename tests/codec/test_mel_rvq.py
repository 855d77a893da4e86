"""MelRVQCodec: fit on a few seconds, codes in range, error falls with more codebooks,
save/load round trip, encode/decode lengths, the Codec contract."""

from __future__ import annotations

import json

import pytest
import torch

from valle.codec.base import Codec
from valle.codec.mel import MelConfig
from valle.codec.mel_rvq import MelRVQCodec, MelRVQConfig, kmeans

SR = 16000


def _speechlike(seconds: float, seed: int) -> torch.Tensor:
    """Voiced segments with a gliding pitch and moving spectral envelope, plus noise bursts."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SR)
    t = torch.arange(n) / SR
    f0 = 110 + 60 * torch.rand(1, generator=g) + 30 * torch.sin(2 * torch.pi * 0.7 * t)
    phase = 2 * torch.pi * torch.cumsum(f0, 0) / SR
    formant = 600 + 500 * torch.sin(2 * torch.pi * (0.5 + torch.rand(1, generator=g)) * t)
    wave = torch.zeros(n)
    for h in range(1, 25):
        amp = torch.exp(-((((h * f0) - formant) / 400) ** 2)) + 0.05
        wave += amp * torch.sin(h * phase) / h**0.5
    envelope = (torch.sin(2 * torch.pi * 2.5 * t + seed) > -0.3).float()
    noise = torch.randn(n, generator=g) * 0.05 * (1 - envelope)
    wave = wave * envelope + noise
    return (0.5 * wave / wave.abs().max()).float()


@pytest.fixture(scope="module")
def waves() -> list[torch.Tensor]:
    return [_speechlike(1.5, s) for s in range(4)]


def _tiny_config(**kw) -> MelRVQConfig:
    mel = MelConfig(n_fft=512, win_length=512, hop_length=160, n_mels=40)
    defaults = dict(
        mel=mel,
        num_codebooks=4,
        codebook_size=16,
        kmeans_iters=8,
        griffin_lim_iters=4,
        max_fit_frames=2000,
    )
    defaults.update(kw)
    return MelRVQConfig(**defaults)


@pytest.fixture(scope="module")
def codec(waves) -> MelRVQCodec:
    return MelRVQCodec.fit(waves, _tiny_config())


def test_codec_facts_come_from_config(codec: MelRVQCodec) -> None:
    assert isinstance(codec, Codec)
    assert codec.sample_rate == SR
    assert codec.frame_rate == SR / 160
    assert (codec.num_codebooks, codec.codebook_size) == (4, 16)


def test_codes_in_range_and_lengths(codec: MelRVQCodec) -> None:
    wavs = [_speechlike(0.5, 10), _speechlike(0.3, 11)[:4800], torch.zeros(100)]
    codes = codec.encode(wavs)
    for w, c in zip(wavs, codes, strict=True):
        expected_t = -(-w.shape[0] // 160)  # ceil(N / hop)
        assert c.shape == (expected_t, 4)
        assert c.dtype == torch.long
        assert int(c.min()) >= 0 and int(c.max()) < 16
    # the codes of one item do not depend on the others in the batch
    assert torch.equal(codec.encode([wavs[0]])[0], codes[0])
    # decode: T frames -> T * hop samples, with any number of codebooks Q' <= Q
    for q in (1, 4):
        out = codec.decode([c[:, :q] for c in codes])
        for c, w in zip(codes, out, strict=True):
            assert w.shape == (c.shape[0] * 160,)
            assert torch.isfinite(w).all()


def test_error_falls_with_more_codebooks(codec: MelRVQCodec, waves) -> None:
    held_out = [_speechlike(1.0, 20)]
    for data in (waves, held_out):
        z = torch.cat([codec.normalize(codec.wave_to_mel(w)) for w in data])  # (T, F)
        codes = codec.quantize(z)[0]
        errors = [
            float((codec.codes_to_normalized(codes[:, :q]) - z).pow(2).mean())
            for q in range(1, codec.num_codebooks + 1)
        ]
        assert all(b < a for a, b in zip(errors[:-1], errors[1:], strict=True)), errors
        assert errors[-1] < 0.5 * float(z.pow(2).mean())
    # the fitted training error per stage is recorded and decreasing too
    stage = codec.fit_info["train_mse_per_stage"]
    assert len(stage) == 4 and all(b < a for a, b in zip(stage[:-1], stage[1:], strict=True))


def test_decode_mel_matches_quantize(codec: MelRVQCodec) -> None:
    mel = codec.wave_to_mel(_speechlike(0.4, 30))
    codes = codec.encode_mel(mel)
    _, quantized = codec.quantize(codec.normalize(mel))
    assert torch.allclose(codec.decode_mel(codes), codec.denormalize(quantized), atol=1e-5)


def test_save_load_identical(codec: MelRVQCodec, tmp_path) -> None:
    codec.save(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["codebooks.pt", "config.json"]
    meta = json.loads((tmp_path / "c" / "config.json").read_text())
    assert meta["config"]["codebook_size"] == 16
    again = MelRVQCodec.load(tmp_path / "c")
    assert again.config == codec.config
    w = [_speechlike(0.7, 40)]
    assert torch.equal(again.encode(w)[0], codec.encode(w)[0])
    codes = codec.encode(w)
    assert torch.allclose(again.decode(codes)[0], codec.decode(codes)[0])


def test_fit_is_deterministic(waves) -> None:
    cfg = _tiny_config(num_codebooks=2)
    a, b = MelRVQCodec.fit(waves, cfg), MelRVQCodec.fit(waves, cfg)
    assert torch.equal(a.codebooks, b.codebooks)
    c = MelRVQCodec.fit(waves, _tiny_config(num_codebooks=2, seed=1))
    assert not torch.equal(a.codebooks, c.codebooks)


def test_fit_from_lhotse_cutset(waves, tmp_path) -> None:
    import soundfile as sf
    from lhotse import CutSet, Recording

    recs = []
    for i, w in enumerate(waves[:2]):
        path = tmp_path / f"{i}.wav"
        sf.write(path, w.numpy(), SR)
        recs.append(Recording.from_file(path))
    cuts = CutSet.from_manifests(recordings=__import__("lhotse").RecordingSet.from_recordings(recs))
    codec = MelRVQCodec.fit(cuts, _tiny_config(num_codebooks=1))
    assert codec.fit_info["audio_seconds"] == pytest.approx(3.0, abs=0.01)


def test_bad_input_is_explained(codec: MelRVQCodec, tmp_path) -> None:
    with pytest.raises(ValueError, match="codebook_size"):
        MelRVQCodec.fit([torch.zeros(1600)], _tiny_config(codebook_size=64))
    with pytest.raises(ValueError, match="out of range"):
        codec.decode([torch.full((3, 2), 16)])
    with pytest.raises(ValueError, match="Q'"):
        codec.decode([torch.zeros(3, 5, dtype=torch.long)])
    with pytest.raises(FileNotFoundError, match="MelRVQCodec directory"):
        MelRVQCodec.load(tmp_path)
    with pytest.raises(TypeError, match="mono"):
        MelRVQCodec.fit(["not a wave"], _tiny_config())


def test_kmeans_finds_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    x = torch.cat([c + 0.1 * torch.randn(200, 2, generator=g) for c in centres])
    found, mse = kmeans(x, 3, iters=10, seed=0)
    dist = torch.cdist(centres, found).min(dim=1).values
    assert (dist < 0.1).all()
    assert mse < 0.05


def test_codec_report_cli_fits_and_reports(waves, tmp_path, capsys) -> None:
    import soundfile as sf

    from valle.bin.codec_report import main

    data = tmp_path / "wavs"
    data.mkdir()
    for i, w in enumerate(waves):
        sf.write(data / f"u{i}.wav", w.numpy(), SR)
    out = tmp_path / "report"
    args = [
        str(tmp_path / "codec"),
        "--data",
        str(data),
        "--fit-on",
        str(data),
        "--no-wer",
        "--num-codebooks",
        "3",
        "--codebook-size",
        "8",
        "--kmeans-iters",
        "4",
        "--n-mels",
        "40",
        "--out-dir",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "reconstruction error" in printed
    report = json.loads((out / "report.json").read_text())
    mse = [r["mse"] for r in report["reconstruction"]]
    assert len(mse) == 3 and mse[0] > mse[1] > mse[2]
    assert MelRVQCodec.load(tmp_path / "codec").num_codebooks == 3
    with pytest.raises(SystemExit, match="already holds a codec"):
        main(args)
