"""faster-whisper base (local model) on flite speech: a low WER end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from valle.eval.asr import DEFAULT_FASTER_WHISPER_PATH, FasterWhisperASR
from valle.eval.wer import score_corpus

pytestmark = pytest.mark.skipif(
    not Path(DEFAULT_FASTER_WHISPER_PATH, "model.bin").is_file(),
    reason=f"no local faster-whisper model at {DEFAULT_FASTER_WHISPER_PATH}",
)

TEXT = "In 1990, she paid $25 for 3 tickets to the 21st show."


def test_faster_whisper_transcribes_flite_speech(flite_say):
    wave, sr = flite_say("rms", TEXT)
    asr = FasterWhisperASR(cpu_threads=2)
    (hyp,) = asr.transcribe([wave], sr, language="en")
    result = score_corpus(["rms"], [TEXT], [hyp])
    # Measured: 0 errors in 16 words (digits, currency and ordinals spelled out on both sides).
    assert result.ref_len == 16
    assert result.error_rate <= 0.2, hyp
