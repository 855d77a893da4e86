"""Codec resynthesis: the "codec" row of a results table and the prompts for SIM-r.

Shape legend: B batch, N samples, T frames, Q codebooks.

Passing the ground truth through the codec (encode, then decode) gives the best a codec language
model could do with that codec: its WER and similarity are the ceiling the papers list beside
the ground truth (VALL-E 2 §4; VALL-E R for merged codecs). The same pass over the speech
prompts gives the *reconstructed prompts* that SIM-r compares against.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from valle.codec.base import Codec
from valle.eval.audio import Wave, resample

logger = logging.getLogger(__name__)


@torch.inference_mode()
def resynthesize(
    codec: Codec,
    waves: Sequence[Wave],
    sample_rate: int,
    num_codebooks: int | None = None,
    batch_size: int = 8,
) -> list[np.ndarray]:
    """Encode and decode ``waves`` (given at ``sample_rate``) with ``codec``.

    ``num_codebooks`` keeps only the first Q' codebooks (default: all). Returns float32 waves at
    ``codec.sample_rate``, each trimmed to the length of its resampled input.
    """
    q = codec.num_codebooks if num_codebooks is None else num_codebooks
    if not 1 <= q <= codec.num_codebooks:
        raise ValueError(f"num_codebooks must be in [1, {codec.num_codebooks}], got {q}")
    prepared = [torch.from_numpy(resample(w, sample_rate, codec.sample_rate)) for w in waves]
    out: list[np.ndarray] = []
    for start in range(0, len(prepared), batch_size):
        batch = prepared[start : start + batch_size]
        codes = codec.encode(batch)  # B x (T_b, Q)
        decoded = codec.decode([c[:, :q] for c in codes])  # B x (N_b,)
        for src, dec in zip(batch, decoded, strict=True):
            wav = dec.detach().float().cpu().numpy()[: len(src)]
            if len(wav) < len(src):
                wav = np.pad(wav, (0, len(src) - len(wav)))
            out.append(wav.astype(np.float32))
    return out
