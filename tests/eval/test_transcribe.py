"""valle.eval.transcribe: every item's k-th sample transcribed, one sample rate per ASR call."""

from __future__ import annotations

import numpy as np

from valle.eval.transcribe import transcribe_samples


class _EchoASR:
    """Transcribes a wave as its first sample's value; records each call's rate and size."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def transcribe(self, waves, sample_rate, language):
        self.calls.append((sample_rate, len(waves)))
        return [f"{w[0]:g}@{sample_rate}" for w in waves]


def test_samples_are_transcribed_per_rate_in_chunks() -> None:
    rates = [16000, 24000, 16000, 16000, 24000]
    waves = [[(np.full(4, 10 * n + k, dtype=np.float32), rates[n]) for k in range(2)]
             for n in range(5)]  # fmt: skip
    asr = _EchoASR()
    hyps = transcribe_samples(asr, waves, "en", chunk=2, progress=False)
    assert hyps == [[f"{10 * n + k}@{rates[n]}" for n in range(5)] for k in range(2)]
    # per sample: the three 16 kHz waves in chunks of 2 (2 + 1), the two 24 kHz ones in one
    assert sorted(asr.calls) == sorted([(16000, 2), (16000, 1), (24000, 2)] * 2)
    assert transcribe_samples(asr, [], "en", progress=False) == []
