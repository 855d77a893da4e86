"""Monotonic blank-free Viterbi and the forward-sum loss on hand-made scores."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from valle.align.forward_sum import forward_sum_loss
from valle.align.viterbi import TooFewFramesError, token_scores, viterbi_durations


def _best_by_enumeration(scores: np.ndarray) -> float:
    T, S = scores.shape
    best = -np.inf
    for cuts in itertools.combinations(range(1, T), S - 1):
        b = [0, *cuts, T]
        best = max(best, sum(scores[b[i] : b[i + 1], i].sum() for i in range(S)))
    return best


def _path_score(scores: np.ndarray, d: np.ndarray) -> float:
    edges = np.concatenate([[0], np.cumsum(d)])
    return sum(scores[edges[i] : edges[i + 1], i].sum() for i in range(len(d)))


def test_picks_the_obvious_path():
    truth = [3, 1, 4, 2]
    T, S = sum(truth), len(truth)
    scores = np.full((T, S), -6.0)
    start = 0
    for s, n in enumerate(truth):
        scores[start : start + n, s] = -0.1
        start += n
    assert viterbi_durations(scores).tolist() == truth


def test_monotonic_one_frame_each_sums_to_T():
    rng = np.random.default_rng(0)
    for _ in range(50):
        T = int(rng.integers(1, 60))
        S = int(rng.integers(1, T + 1))
        d = viterbi_durations(rng.standard_normal((T, S)))
        assert d.shape == (S,) and d.min() >= 1 and d.sum() == T


def test_optimal_against_enumeration():
    rng = np.random.default_rng(1)
    for _ in range(100):
        T = int(rng.integers(2, 9))
        S = int(rng.integers(1, T + 1))
        scores = rng.standard_normal((T, S))
        d = viterbi_durations(scores)
        assert _path_score(scores, d) == pytest.approx(_best_by_enumeration(scores))


def test_as_many_tokens_as_frames_and_too_many():
    assert viterbi_durations(np.zeros((4, 4))).tolist() == [1, 1, 1, 1]
    with pytest.raises(TooFewFramesError, match="cut x has 5 tokens but only 4 frames"):
        viterbi_durations(np.zeros((4, 5)), name="cut x")


def test_token_scores_renormalise_without_blank():
    logp = np.log(np.array([[0.1, 0.1, 0.8], [0.3, 0.6, 0.1]]))  # (T=2, V=3), blank = 2
    s = token_scores(logp, np.array([1, 0, 1]), blank=2)  # (T, S)
    assert np.allclose(np.exp(s[0]), [0.5, 0.5, 0.5])
    assert np.allclose(np.exp(s[1]), [2 / 3, 1 / 3, 2 / 3])


def test_forward_sum_equals_enumeration():
    torch.manual_seed(0)
    scores = torch.randn(2, 6, 5).log_softmax(-1)
    targets = torch.tensor([[1, 3, 2], [4, 0, 0]])
    frame_lens, target_lens = torch.tensor([6, 4]), torch.tensor([3, 1])

    def total(s, tgt, T):
        paths = []
        for cuts in itertools.combinations(range(1, T), len(tgt) - 1):
            b = [0, *cuts, T]
            paths.append(sum(s[b[i] : b[i + 1], tgt[i]].sum() for i in range(len(tgt))))
        return torch.logsumexp(torch.stack(paths), 0)

    want = -(total(scores[0], [1, 3, 2], 6) + total(scores[1], [4], 4)) / 10
    got = forward_sum_loss(scores, targets, frame_lens, target_lens)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
