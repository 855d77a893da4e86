"""What a frame scores for each token of an utterance in the Viterbi: CTC evidence, the
non-blank posterior, and explicit handling of silence and the word separator.

Shape legend: T frames, S tokens of the utterance, V classes (the symbols, without the blank).

Why (measured on the mini corpus, egs/mini/EXPERIMENTS.md "The aligner against the engines'
timings"): the acoustic model is a peaky CTC recogniser, the blank wins about 80% of the speech
frames, so the CTC score alone (``log(p(token) + p(blank))``, ``ModelConfig.score``) is flat
between two spikes and every boundary lands on a spike, late. And the model's ``_`` class is not
silence: the non-blank posterior ``q`` (renormalised without the blank) gives ``_`` 0.28 on
speech frames (word transitions, stop closures) and 0.07 in pauses, while the punctuation
classes get 0.72 in pauses and 0.03 on speech. With the CTC score alone ``_`` took the speech
frames between a word's last spike and the next word's first (7.6 frames on average), so word
starts came out late and word ends early. The score of token ``s`` at frame ``t`` is therefore

    phoneme:    base[t, s] + phone_weight * log q(s | t)
    separator:  base[t, s] + silence_weight * log q(silence | t)  [- separator_cost for ``_``]

with ``base`` the model's frame score (:meth:`AcousticModel.frame_scores`), ``q(silence | t)``
the non-blank mass of the punctuation classes, and separators the ``_`` and punctuation tokens.
A separator thus takes the frames that sound like a pause (and one frame, its minimum, where
there is none), and between two spikes the frames go to the phoneme they sound like. With all
three weights 0 the scores are the base scores (the aligner before this change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from valle.text.punctuation import PUNCTUATION, WORD_BOUNDARY

__all__ = ["Separators", "alignment_scores"]

LOG_FLOOR = float(np.log(1e-8))  # log q below this counts as this (no -inf in the Viterbi)


@dataclass(frozen=True)
class Separators:
    """Symbol ids of the tokens that are not phonemes.

    Attributes:
        word_boundary: id of ``_`` (None when the symbol table has none).
        punctuation: ids of the punctuation tokens; their classes also say "silence".
    """

    word_boundary: int | None
    punctuation: tuple[int, ...]

    @classmethod
    def from_symbols(cls, symbols: Sequence[str]) -> Separators:
        ids = {s: i for i, s in enumerate(symbols)}
        punct = tuple(i for s, i in ids.items() if len(s) == 1 and s in PUNCTUATION)
        return cls(ids.get(WORD_BOUNDARY), punct)

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """``(S,)`` bool: which of the tokens ``ids`` are separators."""
        sep = np.isin(ids, np.asarray(self.punctuation, dtype=np.int64))
        if self.word_boundary is not None:
            sep |= ids == self.word_boundary
        return sep


def alignment_scores(
    base: np.ndarray,
    nonblank_log_post: np.ndarray,
    ids: np.ndarray,
    separators: Separators,
    phone_weight: float,
    silence_weight: float,
    separator_cost: float,
) -> np.ndarray:
    """Viterbi scores ``(T, S)`` of an utterance's tokens.

    Args:
        base: ``(T, V)`` the model's frame scores of every class (``frame_scores``).
        nonblank_log_post: ``(T, V)`` log-posterior of every class without the blank.
        ids: ``(S,)`` the utterance's token ids.
        separators: which ids are ``_`` and punctuation.
        phone_weight: weight of ``log q(token)`` for phoneme tokens.
        silence_weight: weight of ``log q(silence)`` for separator tokens.
        separator_cost: score taken off every frame of a ``_`` token (nats).
    Returns:
        ``(T, S)`` float64 scores.
    """
    ids = np.asarray(ids, dtype=np.int64)
    base = np.asarray(base, dtype=np.float64)
    scores = base[:, ids].copy()  # (T, S)
    if phone_weight == 0 and silence_weight == 0 and separator_cost == 0:
        return scores
    logq = np.maximum(np.asarray(nonblank_log_post, dtype=np.float64), LOG_FLOOR)  # (T, V)
    sep = separators.mask(ids)  # (S,)
    scores[:, ~sep] += phone_weight * logq[:, ids[~sep]]
    if sep.any() and silence_weight != 0:
        if separators.punctuation:
            cols = logq[:, list(separators.punctuation)]  # (T, P)
            log_sil = np.maximum(np.logaddexp.reduce(cols, axis=1), LOG_FLOOR)  # (T,)
        else:
            log_sil = np.full(scores.shape[0], LOG_FLOOR)  # no silence class to ask
        scores[:, sep] += silence_weight * log_sil[:, None]
    if separators.word_boundary is not None:
        scores[:, ids == separators.word_boundary] -= separator_cost
    return scores
