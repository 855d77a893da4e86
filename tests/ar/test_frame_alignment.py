"""The frame track of a frame-aligned AR: token index and position features per frame, the
rescaling of durations between frame rates, the packed step input."""

from __future__ import annotations

import math

import pytest
import torch

from valle.ar.frame_alignment import ConditionedInput, frame_track, rescale_durations


def test_frame_track_indices_and_features() -> None:
    d = torch.tensor([[2, 0, 3], [1, 1, 0]])
    index, feats = frame_track(d, 7)
    assert index.tolist() == [[0, 0, 2, 2, 2, 3, 3], [0, 1, 3, 3, 3, 3, 3]]
    # the 3rd frame of a 3-frame token: k = 2, d = 3
    assert torch.allclose(feats[0, 4], torch.tensor([2 / 3, 1 / 3, math.log(3) / 3]))
    assert torch.allclose(feats[0, 2], torch.tensor([0.0, 1 / 3, 0.0]))
    assert torch.allclose(feats[1, 1], torch.tensor([0.0, 1.0, 0.0]))
    assert feats[0, 5:].abs().sum() == 0 and feats[1, 2:].abs().sum() == 0  # past the text


def test_rescale_durations_keeps_the_spans_and_hits_the_frame_count() -> None:
    d = torch.tensor([[2, 4, 6], [3, 3, 0], [0, 0, 0]])
    assert torch.equal(rescale_durations(d, torch.tensor([12, 6, 0])), d)  # same rate
    out = rescale_durations(d, torch.tensor([24, 5, 0]))
    assert out[0].tolist() == [4, 8, 12]
    assert out.sum(-1).tolist() == [24, 5, 0]
    assert out[1, 2] == 0


def test_conditioned_input_needs_the_packed_track() -> None:
    inner = torch.nn.Linear(4, 6)
    emb = ConditionedInput(inner, step_dim=4)
    x, c = torch.randn(2, 3, 4), torch.randn(2, 3, 6)
    assert torch.allclose(emb(torch.cat([x, c], -1)), inner(x) + c)
    with pytest.raises(ValueError, match="FrameTrackDecoding"):
        emb(x)
