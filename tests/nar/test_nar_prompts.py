"""Prompt policies: shapes, contents and loss masks."""

from __future__ import annotations

import pytest
import torch

from valle.nar.prompts import (
    NoPrompt,
    OtherUtterancePrompt,
    RandomSegmentPrompt,
    SameUtterancePrefix,
    build_prompt_policy,
    slice_rows,
)
from valle.testing.model import dummy_batch, tiny_valle_config


@pytest.fixture
def batch():
    return dummy_batch(tiny_valle_config(), batch_size=4, audio_len=(2, 20), seed=7)


def _rows(codes: torch.Tensor, lens: torch.Tensor) -> list[torch.Tensor]:
    return [codes[b, : int(n)] for b, n in enumerate(lens)]


def test_no_prompt(batch) -> None:
    s = NoPrompt()(batch)
    assert s.prompt_codes.shape == (4, 0, 4) and (s.prompt_lens == 0).all()
    assert torch.equal(s.target_codes, batch["audio_codes"])
    assert torch.equal(s.target_mask().sum(1), batch["audio_lens"])


@pytest.mark.parametrize("lo, hi", [(0.25, 0.5), (0.0, 1.0), (0.5, 0.5)])
def test_same_utterance_prefix_splits_and_masks(batch, lo, hi) -> None:
    g = torch.Generator().manual_seed(0)
    s = SameUtterancePrefix(lo, hi)(batch, g)
    lens = batch["audio_lens"]
    assert torch.equal(s.prompt_lens + s.target_lens, lens)
    assert (s.prompt_lens >= 1).all() and (s.target_lens >= 1).all()
    for b, (p, t, full) in enumerate(
        zip(
            _rows(s.prompt_codes, s.prompt_lens),
            _rows(s.target_codes, s.target_lens),
            _rows(batch["audio_codes"], lens),
            strict=True,
        )
    ):
        assert torch.equal(torch.cat([p, t]), full), b
    if lo == hi == 0.5:
        expected = torch.minimum(torch.round(0.5 * lens).long().clamp(min=1), lens - 1)
        assert torch.equal(s.prompt_lens, expected)
    assert torch.equal(s.target_mask().sum(1), s.target_lens)


def test_random_segment_is_a_contiguous_piece(batch) -> None:
    g = torch.Generator().manual_seed(1)
    s = RandomSegmentPrompt(0.2, 0.6)(batch, g)
    assert torch.equal(s.target_codes, batch["audio_codes"])
    for p, full in zip(
        _rows(s.prompt_codes, s.prompt_lens),
        _rows(batch["audio_codes"], batch["audio_lens"]),
        strict=True,
    ):
        assert 1 <= len(p) <= len(full)
        starts = [i for i in range(len(full) - len(p) + 1) if torch.equal(full[i : i + len(p)], p)]
        assert starts, "prompt is not a segment of the utterance"
    assert (
        s.prompt_codes.sum(-1)[~(torch.arange(s.prompt_codes.shape[1]) < s.prompt_lens[:, None])]
        == 0
    ).all()


def test_other_utterance_uses_batch_prompt(batch) -> None:
    s = OtherUtterancePrompt()(batch)
    assert s.prompt_codes is batch["prompt_codes"] and s.prompt_lens is batch["prompt_lens"]
    assert torch.equal(s.target_codes, batch["audio_codes"])
    missing = {k: v for k, v in batch.items() if not k.startswith("prompt")}
    with pytest.raises(KeyError, match="prompt provider"):
        OtherUtterancePrompt()(missing)


def test_build_by_name_and_slice_rows() -> None:
    assert isinstance(build_prompt_policy("random_segment", 0.1, 0.2), RandomSegmentPrompt)
    with pytest.raises(ValueError, match="same_utterance_prefix"):
        build_prompt_policy("same_utterance", 0.1, 0.2)
    codes = torch.arange(12).view(1, 6, 2)
    out = slice_rows(codes.expand(2, 6, 2), torch.tensor([1, 4]), torch.tensor([3, 2]))
    assert out.tolist() == [[[2, 3], [4, 5], [6, 7]], [[8, 9], [10, 11], [0, 0]]]
