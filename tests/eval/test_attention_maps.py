"""Monotonicity / diagonality scores of audio->text attention maps, and their images."""

from __future__ import annotations

import pytest
import torch

from valle.eval.attention_maps import (
    alignment_scores,
    attention_figure,
    mean_scores,
    save_attention_png,
    text_centroids,
)

N, S = 60, 20


def _diagonal(n: int = N, s: int = S, width: float = 1.0) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float)[:, None] * (s - 1) / (n - 1)
    a = torch.exp(-0.5 * ((torch.arange(s)[None, :] - t) / width) ** 2)  # (N, S)
    return a / a.sum(-1, keepdim=True)


def test_diagonal_map_scores_high() -> None:
    s = alignment_scores(_diagonal())
    assert s.monotonic == 1.0
    assert s.spearman > 0.99 and s.pearson > 0.99
    assert s.diagonal_focus > 0.9
    assert s.text_mass == pytest.approx(1.0)


def test_uniform_map_has_no_trend_nor_focus() -> None:
    s = alignment_scores(torch.full((N, S), 0.5 / S))  # half the mass on text, spread evenly
    assert s.spearman == 0.0 and s.pearson == 0.0
    assert s.diagonal_focus < 0.3  # about 2 * band
    assert s.text_mass == pytest.approx(0.5)


def test_shuffled_diagonal_scores_low() -> None:
    g = torch.Generator().manual_seed(0)
    s = alignment_scores(_diagonal()[torch.randperm(N, generator=g)])
    assert s.monotonic < 0.75
    assert abs(s.spearman) < 0.4 and abs(s.pearson) < 0.4
    assert s.diagonal_focus < 0.3


def test_backward_jumps_within_tolerance_are_monotonic() -> None:
    a = torch.zeros(4, 10)
    for t, pos in enumerate([0, 3, 2, 6]):  # steps back one token, within the 1-token tolerance
        a[t, pos] = 1.0
    assert text_centroids(a).tolist() == [0.0, 3.0, 2.0, 6.0]
    assert alignment_scores(a).monotonic == 1.0
    assert alignment_scores(a, tolerance=0.5).monotonic == pytest.approx(2 / 3)


def test_mean_scores_and_bad_shape() -> None:
    a, b = alignment_scores(_diagonal()), alignment_scores(torch.ones(N, S))
    m = mean_scores([a, b])
    assert m.diagonal_focus == pytest.approx((a.diagonal_focus + b.diagonal_focus) / 2)
    with pytest.raises(ValueError, match="attention map"):
        alignment_scores(torch.ones(3))


def test_figure_and_png(tmp_path) -> None:
    maps = torch.stack([_diagonal(), torch.ones(N, S) / S])  # (Y, N, S)
    scores = [alignment_scores(m) for m in maps]
    fig = attention_figure(maps, "x", scores)
    assert len(fig.axes) == 4  # 2 panels + 2 colorbars
    assert fig.axes[0].images[0].get_array().shape == (S, N)  # text on y, audio on x
    path = save_attention_png(maps, tmp_path / "a" / "att.png", "x", scores)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
