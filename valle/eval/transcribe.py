"""ASR transcripts of a system's outputs, sample by sample (``valle-bench wer``).

Shape legend: N items, K samples per item; a wave is a 1-D float array at its own rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["transcribe_samples"]


def transcribe_samples(
    asr: Any,
    waves: Sequence[Sequence[tuple[Any, int]]],
    language: str,
    chunk: int = 8,
    progress: bool = True,
) -> list[list[str]]:
    """``waves[n][k] = (wave, sample_rate)`` -> ``hyps[k][n]``: the transcript of every item's
    k-th sample, in chunks of ``chunk`` waves of one sample rate per ASR call."""
    from tqdm import tqdm

    n_samples = len(waves[0]) if waves else 0
    out = []
    for k in range(n_samples):
        by_rate: dict[int, list[int]] = {}
        for n, w in enumerate(waves):
            by_rate.setdefault(w[k][1], []).append(n)
        hyps = [""] * len(waves)
        chunks = [
            (sr, members[c : c + chunk])
            for sr, members in by_rate.items()
            for c in range(0, len(members), chunk)
        ]
        desc = f"ASR sample {k}" if n_samples > 1 else "ASR"
        with tqdm(total=len(waves), desc=desc, unit="utt", disable=not progress) as bar:
            for sr, members in chunks:
                texts = asr.transcribe([waves[n][k][0] for n in members], sr, language)
                for n, t in zip(members, texts, strict=True):
                    hyps[n] = t
                bar.update(len(members))
        out.append(hyps)
    return out
