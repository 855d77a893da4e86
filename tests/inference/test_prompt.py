"""Prompt loading (rate, channels, layout errors) and the trimming rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valle.inference import PromptTrim, load_prompt, trim_prompt

SR = 16000


def _tone(seconds: float, pause_at: float | None = None) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    wave = 0.3 * torch.sin(2 * torch.pi * 200 * t)
    if pause_at is not None:
        wave[int((pause_at - 0.05) * SR) : int((pause_at + 0.05) * SR)] = 0.0
    return wave


def test_short_prompts_are_kept_whole() -> None:
    wave = _tone(4.4)
    out, text = trim_prompt(wave, "a b c", SR)
    assert out is wave and text == "a b c"


def test_cut_is_at_the_pause_nearest_the_target_and_the_text_proportional(caplog) -> None:
    wave = _tone(8.0, pause_at=2.7)
    out, text = trim_prompt(wave, "w1 w2 w3 w4 w5 w6 w7 w8", SR)
    assert abs(len(out) / SR - 2.7) < 0.03
    assert text == "w1 w2 w3"  # round(8 * 2.7 / 8)
    assert "trimmed" in caplog.text
    # a pause outside the +-0.5 s window is not taken
    out2, _ = trim_prompt(_tone(8.0, pause_at=1.5), "x y", SR)
    assert abs(len(out2) / SR - 1.5) > 0.9


def test_text_without_spaces_is_cut_by_characters() -> None:
    out, text = trim_prompt(_tone(6.0, pause_at=3.0), "今天天气很好", SR)
    assert text == "今天天"


def test_trimming_can_be_disabled_and_is_validated() -> None:
    wave = _tone(9.0)
    out, text = trim_prompt(wave, "a b", SR, PromptTrim(seconds=None))
    assert out is wave and text == "a b"
    with pytest.raises(ValueError, match="> 0"):
        PromptTrim(seconds=0)


def test_load_prompt_mixes_channels_and_resamples() -> None:
    stereo = np.stack([np.ones(8000), np.zeros(8000)]).astype(np.float32)  # (C, N) at 8 kHz
    wave = load_prompt(stereo, SR, source_rate=8000)
    assert wave.shape == (16000,) and abs(float(wave[4000:12000].mean()) - 0.5) < 1e-3
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        load_prompt(stereo.T, SR, source_rate=8000)
    with pytest.raises(ValueError, match="empty"):
        load_prompt(np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(TypeError, match="file path or an array"):
        load_prompt(3.0, SR)  # type: ignore[arg-type]
