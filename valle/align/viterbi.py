"""Monotonic forced alignment without blanks: frames per token from per-frame token scores.

Shape legend: T frames, S tokens of the utterance, V classes.

Given ``scores[t, s]``, the log-score of frame ``t`` belonging to token ``s`` of the sequence,
find the segmentation that maximises the summed score where every token occupies at least one
contiguous run of frames, tokens keep their order and every frame is assigned (no blank state:
a CTC blank frame must belong to some token). The recursion over tokens is

    D[s, t] = C[t, s] + max_{s <= t0 <= t} (D[s-1, t0-1] - C[t0-1, s])

with ``C`` the running sum of ``scores`` over frames and ``D[s, t]`` the best score of frames
``0..t`` with token ``s`` ending at ``t``. The inner max is a running maximum over frames
(``np.maximum.accumulate``), so the work is one vector pass over all frames per token:
O(S * T), vectorised over frames, with no Python loop over frames.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TooFewFramesError", "viterbi_durations", "token_scores"]


class TooFewFramesError(ValueError):
    """An utterance has more tokens than frames, so no token can have >= 1 frame each."""


def viterbi_durations(scores: np.ndarray, name: str = "the utterance") -> np.ndarray:
    """Frames per token of the best monotonic segmentation.

    Args:
        scores: ``(T, S)`` float log-scores of frame ``t`` for the ``s``-th token.
        name: what to call the utterance in errors (a cut id).
    Returns:
        ``(S,)`` int64 durations, each ``>= 1``, summing to ``T``.
    Raises:
        TooFewFramesError: ``S > T``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (T, S), got shape {scores.shape}")
    T, S = scores.shape
    if S == 0:
        raise ValueError(f"{name} has no tokens to align")
    if S > T:
        raise TooFewFramesError(
            f"{name} has {S} tokens but only {T} frames: every token needs at least one frame "
            "(drop the cut or check its transcript)"
        )
    cum = np.cumsum(scores, axis=0)  # (T, S) C[t, s]
    idx = np.arange(T)
    starts = np.zeros((S, T), dtype=np.int64)  # best first frame of token s ending at t
    D = cum[:, 0].copy()  # (T,) token 0 starts at frame 0
    for s in range(1, S):
        # prev[t0]: best score with token s starting at frame t0 (before its own frames)
        prev = np.full(T, -np.inf)
        prev[1:] = D[:-1] - cum[:-1, s]  # (T,)
        best = np.maximum.accumulate(prev)  # (T,) max over t0 <= t
        at = np.where(prev == best, idx, 0)
        starts[s] = np.maximum.accumulate(at)  # latest t0 reaching the running max
        D = cum[:, s] + best  # (T,)
    durations = np.empty(S, dtype=np.int64)
    end = T - 1
    for s in range(S - 1, 0, -1):
        start = int(starts[s, end])
        durations[s] = end - start + 1
        end = start - 1
    durations[0] = end + 1
    return durations


def token_scores(log_probs: np.ndarray, token_ids: np.ndarray, blank: int | None) -> np.ndarray:
    """Per-frame scores ``(T, S)`` of an utterance's tokens from log-posteriors ``(T, V)``.

    With ``blank`` given, the scores are the log-posteriors renormalised over the non-blank
    classes: a CTC model puts most of its mass on the blank between a token's spikes, and the
    share the non-blank classes get there still says which phoneme the frame sounds like.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    if blank is not None:
        keep = np.ones(lp.shape[1], dtype=bool)
        keep[blank] = False
        sub = lp[:, keep]
        norm = np.logaddexp.reduce(sub, axis=1, keepdims=True)  # (T, 1)
        lp = lp - norm
    return lp[:, np.asarray(token_ids, dtype=np.int64)]  # (T, S)
