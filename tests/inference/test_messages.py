"""Inference messages say what is wrong and what to pass (#8.10)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from valle.data.audio import AudioLoadError
from valle.inference import Synthesizer, load_prompt

SR = 16000


@pytest.fixture(scope="module")
def synth(setup) -> Synthesizer:
    return Synthesizer.from_checkpoint(setup.checkpoint)


def test_empty_prompt_transcript_names_the_prompt_transcript(setup, synth) -> None:
    with pytest.raises(ValueError) as err:
        synth.synthesize("The dog.", setup.prompt_wav, "  ")
    msg = str(err.value)
    assert "prompt transcript is empty" in msg and "--prompt-text" in msg
    assert "sentence to speak" not in msg
    with pytest.raises(ValueError, match="text to speak is empty"):
        synth.synthesize("", setup.prompt_wav, "Hello.")


def test_a_non_string_text_is_a_type_error_not_empty(setup, synth) -> None:
    with pytest.raises(TypeError, match="text to speak must be a string, got int 123"):
        synth.synthesize(123, setup.prompt_wav, "Hello.")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prompt transcript must be a string"):
        synth.synthesize("The dog.", setup.prompt_wav, None)  # type: ignore[arg-type]


def _tone(seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


def test_short_or_silent_prompts_are_warned_about(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="valle.inference.prompt"):
        load_prompt(_tone(3.0), SR)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="valle.inference.prompt"):
        load_prompt(_tone(0.6), SR)
    assert "only 0.60 s long" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="valle.inference.prompt"):
        load_prompt(np.zeros(3 * SR, dtype=np.float32), SR)
        load_prompt(_tone(3.0, amplitude=1e-4), SR)  # -83 dBFS
    assert caplog.text.count("is silent") == 2


def test_prompt_file_errors_name_the_prompt_not_a_manifest(tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_prompt(tmp_path / "missing.wav", SR)
    assert "prompt recording" in str(err.value) and "manifest" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="is a directory"):
        load_prompt(tmp_path, SR)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioLoadError) as err2:
        load_prompt(bad, SR)
    assert str(bad) in str(err2.value) and "manifest" not in str(err2.value)
