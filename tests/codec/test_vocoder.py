"""Vocoders: Griffin-Lim length and spectral convergence, HiFi-GAN loader with a tiny config."""

from __future__ import annotations

import pytest
import torch

from valle.codec.mel import LogMel, MelConfig
from valle.codec.vocoder import GriffinLimVocoder, HifiGanVocoder, Vocoder, mel_to_magnitude


def _tone(sr: int = 16000, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(sr * seconds)) / sr
    return 0.4 * torch.sin(2 * torch.pi * 440 * t) + 0.2 * torch.sin(2 * torch.pi * 1250 * t)


def _spectral_convergence(ref: torch.Tensor, est: torch.Tensor) -> float:
    return float((ref - est).norm() / ref.norm())


@pytest.mark.parametrize("n", [3200, 16000, 16077])
def test_griffin_lim_length(n: int) -> None:
    lm = LogMel()
    voc = GriffinLimVocoder(lm, n_iter=8)
    mel = lm(torch.randn(2, n) * 0.1)
    wave = voc(mel)
    assert wave.shape == (2, mel.shape[1] * lm.hop_length)
    assert isinstance(voc, Vocoder)


def test_griffin_lim_reconstructs_a_tone() -> None:
    lm = LogMel(MelConfig(n_mels=128))
    x = _tone()
    voc = GriffinLimVocoder(lm, n_iter=64)
    y = voc(lm(x))[0, : x.shape[0]]
    ref_mag, est_mag = lm.magnitude(x)[0], lm.magnitude(y)[0]
    sc = _spectral_convergence(ref_mag, est_mag)
    assert sc < 0.2, sc
    # a wave with the wrong content must score much worse: the bound can fail
    wrong = lm.magnitude(torch.randn_like(x) * 0.3)[0]
    assert _spectral_convergence(ref_mag, wrong) > 0.8
    # the log-mels agree closely where the tone has energy
    ref_mel, est_mel = lm(x)[0, 2:-2], lm(y)[0, 2:-2]
    loud = ref_mel > ref_mel.max() - 4.0
    assert (est_mel - ref_mel)[loud].abs().mean() < 0.3


def test_more_iterations_converge_better() -> None:
    lm = LogMel()
    x = _tone(seconds=0.5)
    mag = lm.magnitude(x)
    sc = []
    for n_iter in (2, 48):
        y = GriffinLimVocoder(lm, n_iter=n_iter).griffin_lim(mag)[0, : x.shape[0]]
        sc.append(_spectral_convergence(mag[0], lm.magnitude(y)[0]))
    assert sc[1] < sc[0]


def test_nnls_mel_inversion_is_nonnegative_and_consistent() -> None:
    lm = LogMel(MelConfig(n_mels=80))
    x = _tone(seconds=0.3)
    mel = lm(x)
    mag = mel_to_magnitude(mel, lm)
    assert (mag >= 0).all()
    # the recovered magnitude maps back to (nearly) the same log-mel where there is energy
    remel = lm.log(mag @ lm.mel_basis)
    loud = mel > mel.max() - 6
    assert (remel - mel)[loud].abs().mean() < 0.2


def test_vocoder_rejects_foreign_mels() -> None:
    voc = GriffinLimVocoder(LogMel(MelConfig(n_mels=80)), n_iter=2)
    with pytest.raises(ValueError, match="F=80"):
        voc(torch.zeros(1, 10, 100))


def _tiny_hifigan():
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    cfg = SpeechT5HifiGanConfig(
        upsample_initial_channel=16,
        upsample_rates=[4, 4, 4, 4],
        upsample_kernel_sizes=[8, 8, 8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
    )
    torch.manual_seed(0)
    return SpeechT5HifiGan(cfg)


def test_hifigan_tiny_random_length_and_reload(tmp_path) -> None:
    model = _tiny_hifigan()
    voc = HifiGanVocoder(model)
    assert voc.logmel.config == MelConfig.speecht5()
    x = torch.randn(2, 5000) * 0.1
    mel = voc.logmel(x)  # (2, 1 + 5000 // 256, 80)
    assert mel.shape == (2, 20, 80)
    wave = voc(mel)
    assert wave.shape == (2, 20 * 256)
    assert torch.isfinite(wave).all()
    model.save_pretrained(tmp_path)
    again = HifiGanVocoder.from_pretrained(tmp_path)
    assert torch.allclose(again(mel), wave, atol=1e-6)


def test_hifigan_mismatch_is_explained(tmp_path) -> None:
    with pytest.raises(ValueError, match="hop_length"):
        HifiGanVocoder(_tiny_hifigan(), MelConfig(hop_length=200))
    with pytest.raises(OSError, match="local directory"):
        HifiGanVocoder.from_pretrained(tmp_path / "missing", local_files_only=True)
