"""Speaker similarity of a test list's outputs (``valle-bench sim``): each sample against the
item's prompt (SIM-o), its codec-resynthesized prompt (SIM-r) and the original utterance
(SIM-utt).

Shape legend: N items, K samples per item; a wave is a 1-D float array at its own rate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["score_protocol_samples"]


def score_protocol_samples(
    encoder: Any,
    items: Mapping[str, Any],
    cuts: Any,
    ids: Sequence[str],
    waves: Sequence[Sequence[tuple[Any, int]]],
    prompt_resynth_dir: str | os.PathLike[str] | None = None,
    original: bool = True,
) -> list[Any]:
    """One :class:`~valle.eval.similarity.SimilarityResult` per sample k of ``waves[n][k] =
    (wave, sample_rate)``: item ``ids[n]`` (a protocol item of ``items``, its audio in ``cuts``)
    against its prompt, its resynthesized prompt ``<prompt_resynth_dir>/<id>.wav`` (when given)
    and, with ``original``, the original utterance; all resampled to the encoder's rate."""
    from valle.eval.audio import load_wave, resample
    from valle.eval.protocols import load_prompt_audio, load_target_audio
    from valle.eval.similarity import WaveBatch, score_similarity

    sr = encoder.sample_rate

    def batch(pairs: Sequence[tuple[Any, int]]) -> WaveBatch:
        return WaveBatch([resample(w, s, sr) for w, s in pairs], sr)

    prompt = batch([load_prompt_audio(items[i], cuts) for i in ids])
    target = batch([load_target_audio(items[i], cuts) for i in ids]) if original else None
    resynth = None
    if prompt_resynth_dir:
        d = Path(prompt_resynth_dir)
        resynth = batch([load_wave(d / f"{i}.wav") for i in ids])
    return [
        score_similarity(encoder, ids, batch([w[k] for w in waves]), prompt, resynth, target)
        for k in range(len(waves[0]))
    ]
