"""Frequency-warp speaker augmentation of training mels (valle.modules.mel_warp)."""

from __future__ import annotations

import pytest
import torch

from valle.config import ConfigError
from valle.modules.mel_warp import MelWarpConfig, mel_centres

CENTRES = mel_centres(80, 0.0, 8000.0)  # the HiFi-GAN mels' 80 slaney bins


def _tone_mel(hz: float, width: float = 40.0) -> torch.Tensor:
    """A (1, 3, 80) log-mel with one spectral peak at ``hz``."""
    bump = torch.exp(-0.5 * ((CENTRES - hz) / width) ** 2)
    return torch.log(bump + 1e-3)[None, None, :].expand(1, 3, -1).clone()


def test_centres_rise_between_the_edges() -> None:
    assert CENTRES.shape == (80,) and bool((CENTRES[1:] > CENTRES[:-1]).all())
    assert 0 < float(CENTRES[0]) < 100 and 7000 < float(CENTRES[-1]) < 8000


@pytest.mark.parametrize("factor", [0.9, 1.12])
def test_a_peak_moves_by_the_factor(factor: float) -> None:
    warp = MelWarpConfig().build(CENTRES)
    out = warp.warp(_tone_mel(1000.0), torch.tensor([factor]))
    peak = float(CENTRES[int(out[0, 0].argmax())])
    spacing = float(CENTRES[torch.searchsorted(CENTRES, torch.tensor(1000.0 * factor))]) - float(
        CENTRES[torch.searchsorted(CENTRES, torch.tensor(1000.0 * factor)) - 1]
    )
    assert abs(peak - 1000.0 * factor) <= spacing  # within one bin of f * a
    assert torch.allclose(out[0, 0], out[0, 2])  # every frame alike


def test_factor_one_and_eval_mode_leave_the_frames_alone() -> None:
    warp = MelWarpConfig().build(CENTRES)
    mel = torch.randn(2, 4, 80)
    assert torch.allclose(warp.warp(mel, torch.ones(2)), mel, atol=1e-5)
    assert warp.eval()(mel) is mel


def test_factors_follow_the_config_and_the_generator() -> None:
    warp = MelWarpConfig(max_shift=0.1).build(CENTRES).train()
    g = torch.Generator().manual_seed(0)
    a = warp.factors(4000, torch.device("cpu"), g)
    lo, hi = 1 / 1.1, 1.1
    assert float(a.min()) >= lo - 1e-6 and float(a.max()) <= hi + 1e-6
    assert abs(float(torch.log(a).mean())) < 0.01  # log-uniform around 1
    again = warp.factors(4000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert torch.equal(a, again)
    none = MelWarpConfig(prob=0.0).build(CENTRES).factors(8, torch.device("cpu"))
    assert torch.equal(none, torch.ones(8))
    half = MelWarpConfig(prob=0.5).build(CENTRES).factors(4000, torch.device("cpu"), g)
    assert 0.4 < float((half != 1).float().mean()) < 0.6


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_shift"):
        MelWarpConfig(max_shift=0.0)
    with pytest.raises(ConfigError, match="prob"):
        MelWarpConfig(prob=1.5)
    warp = MelWarpConfig().build(CENTRES)
    with pytest.raises(ValueError, match="bins"):
        warp.warp(torch.zeros(1, 2, 40), torch.ones(1))


def test_melle_warps_its_training_mels_only() -> None:
    """The augmented MELLE's loss reads warped frames in training (a different loss from the
    same draws without the warp) and the eval loss and generation are the plain model's."""
    import dataclasses

    from valle.testing.model import tiny_config
    from valle.variants.melle import Melle

    cfg = tiny_config("melle", reduction=1)
    plain = cfg.build()
    warped_cfg = dataclasses.replace(cfg, augment=MelWarpConfig(max_shift=0.2))
    warped: Melle = warped_cfg.build()
    warped.load_state_dict(plain.state_dict())
    assert warped.mel_warp is not None
    assert warped.mel_warp.centres.shape == (cfg.mel.n_mels,)
    torch.manual_seed(0)
    mel = torch.randn(2, 7, cfg.mel.n_mels)
    batch = {
        "mel": mel, "mel_lens": torch.tensor([7, 5]),
        "text_tokens": torch.tensor([[1, 2, 3], [2, 3, 0]]), "text_lens": torch.tensor([3, 2]),
    }  # fmt: skip
    losses = {}
    for name, model in (("plain", plain), ("warped", warped)):
        for mode in ("train", "eval"):
            getattr(model, mode)()
            torch.manual_seed(1)
            loss, _ = model.loss(batch, generator=torch.Generator().manual_seed(2))
            losses[name, mode] = float(loss.detach())
    assert losses["plain", "eval"] == pytest.approx(losses["warped", "eval"])
    assert losses["plain", "train"] != pytest.approx(losses["warped", "train"])
