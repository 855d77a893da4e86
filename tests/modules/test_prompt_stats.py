"""Prompt-statistics matching: the output's speech frames take the prompt's per-bin mean (and,
at strength 1, spread), pauses are left out of the statistics, short inputs pass unchanged,
and a MELLE configured with it applies it to each row with that row's own prompt."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from valle.config import ConfigError
from valle.modules.prompt_stats import (
    PromptStatsConfig,
    match_prompt_statistics,
    speech_frames,
    speech_mask,
)


def _speech(n: int, mean: torch.Tensor, std: torch.Tensor, pause: int, seed: int) -> torch.Tensor:
    """``pause`` quiet frames (log-mel -10) then ``n`` speech frames with the given statistics."""
    g = torch.Generator().manual_seed(seed)
    frames = mean + std * torch.randn(n, mean.shape[0], generator=g)
    return torch.cat([torch.full((pause, mean.shape[0]), -10.0), frames])


def test_the_output_takes_the_prompt_s_mean_and_spread() -> None:
    F = 6
    out = _speech(300, torch.linspace(-2, 0, F), torch.full((F,), 0.2), pause=60, seed=0)
    prompt = _speech(200, torch.linspace(0, 1, F), torch.linspace(0.5, 1.0, F), pause=40, seed=1)
    keep = speech_mask(out, 0.3)  # the statistics' frames: 70% of them, no pause among them
    assert int(keep.sum()) == 252 and not keep[:60].any()
    want = speech_frames(prompt, 0.3)
    assert want.min() > -9  # the prompt's pauses are left out too
    before = out[keep]

    def matched(strength: float) -> torch.Tensor:
        return match_prompt_statistics(out, prompt, PromptStatsConfig(strength=strength))[keep]

    full = matched(1.0)
    assert torch.allclose(full.mean(0), want.mean(0), atol=1e-4)
    assert torch.allclose(full.std(0), want.std(0), atol=1e-4)
    mean_only = matched(0.0)
    assert torch.allclose(mean_only.mean(0), want.mean(0), atol=1e-4)
    assert torch.allclose(mean_only.std(0), before.std(0), atol=1e-4)
    half = matched(0.5)
    ratio = want.std(0) / before.std(0)
    assert torch.allclose(half.std(0) / before.std(0), ratio.sqrt(), atol=1e-3)


def test_short_inputs_pass_unchanged_and_bad_settings_are_refused() -> None:
    cfg = PromptStatsConfig()
    long = torch.randn(100, 4)
    assert torch.equal(match_prompt_statistics(long, torch.randn(10, 4), cfg), long)
    assert torch.equal(match_prompt_statistics(long[:5], torch.randn(100, 4), cfg), long[:5])
    with pytest.raises(ValueError, match="bins"):
        match_prompt_statistics(long, torch.randn(100, 5), cfg)
    for bad in ({"strength": 1.5}, {"speech_quantile": 1.0}, {"min_frames": 1}):
        with pytest.raises(ConfigError):
            PromptStatsConfig(**bad)


def test_melle_matches_each_row_to_its_own_prompt() -> None:
    from valle.testing.model import tiny_model

    plain = tiny_model(variant="melle").eval()
    with torch.no_grad():  # never stop: rows run to the length bound
        plain.head.stop_proj.weight.zero_()
        plain.head.stop_proj.bias.fill_(-20.0)
    cfg = PromptStatsConfig(min_frames=2)
    matched = type(plain)(
        plain.ar, plain.postnet, config=dataclasses.replace(plain.config, prompt_stats=cfg)
    )
    matched.eval()
    g = torch.Generator().manual_seed(0)
    F = plain.n_mels
    prompt = torch.randn(2, 12, F, generator=g) + torch.tensor([[[2.0]], [[-2.0]]])
    plens = torch.tensor([12, 9])
    text, tlens = torch.randint(1, 10, (2, 4), generator=g), torch.tensor([4, 3])
    kw = dict(prompt_mel=prompt, prompt_mel_lens=plens, max_len_ratio=3.0)
    base = plain.generate(text, tlens, **kw)
    got = matched.generate(text, tlens, **kw)
    for b in range(2):
        want = match_prompt_statistics(base[b], prompt[b, : int(plens[b])], cfg)
        assert torch.allclose(got[b], want, atol=1e-5)
        assert not torch.allclose(got[b], base[b])
