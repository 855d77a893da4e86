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


def test_random_segment_leaves_the_copied_frames_out_of_the_loss(batch) -> None:
    """The prompt's frames are in the target too: scoring them lets the NAR copy the answer."""
    g = torch.Generator().manual_seed(1)
    s = RandomSegmentPrompt(0.2, 0.6)(batch, g)
    mask = s.target_mask()
    lens = batch["audio_lens"]
    assert torch.equal(mask.sum(1), lens - s.prompt_lens)
    assert (mask.sum(1) >= 1).all()  # every utterance of >= 2 frames keeps a frame to score
    for b in range(len(lens)):
        p = s.prompt_codes[b, : int(s.prompt_lens[b])]
        scored = mask[b].nonzero().flatten().tolist()
        # the frames left out are exactly one occurrence of the prompt segment
        left_out = [i for i in range(int(lens[b])) if i not in scored]
        assert torch.equal(batch["audio_codes"][b, left_out], p)
        assert left_out == list(range(left_out[0], left_out[0] + len(p)))


def test_random_segment_nar_loss_ignores_the_copied_frames() -> None:
    """Changing the logits of copied frames does not change the NAR loss."""
    from valle.testing.model import tiny_model

    model = tiny_model(prompt="random_segment").eval()
    batch = dummy_batch(tiny_valle_config(), batch_size=3, audio_len=(6, 12), seed=3)
    split = model.nar.prompt(batch, torch.Generator().manual_seed(5))
    original = model.nar.forward

    def poisoned(*args, **kwargs):
        logits = original(*args, **kwargs)
        return logits.masked_fill(split.copied[..., None], 1e4 * (torch.rand(1).item() + 1))

    with torch.no_grad():
        a, _ = model.nar.loss(batch, torch.Generator().manual_seed(5), stage=2)
        model.nar.forward = poisoned
        b, _ = model.nar.loss(batch, torch.Generator().manual_seed(5), stage=2)
    assert torch.allclose(a, b)


def test_other_utterance_fallback_prefix_is_left_out_of_the_loss(batch) -> None:
    """A row whose prompt is the target's own prefix (one utterance of the speaker, or
    data.prompt=prefix) must not score the copied frames; other rows score everything."""
    lens = batch["audio_lens"]
    p = torch.minimum(torch.full_like(lens, 3), lens - 1)
    batch = dict(batch)
    batch["prompt_codes"] = slice_rows(batch["audio_codes"], torch.zeros_like(p), p)
    batch["prompt_lens"] = p
    batch["prompt_start"] = torch.tensor([0, -1, 0, -1])
    mask = OtherUtterancePrompt()(batch).target_mask()
    for b in range(4):
        n, k = int(lens[b]), int(p[b])
        expected = torch.arange(mask.shape[1]) < n
        if b in (0, 2):
            expected[:k] = False
        assert torch.equal(mask[b], expected), b


def test_policies_declare_their_data_and_inference_text() -> None:
    assert OtherUtterancePrompt.needs_other_utterance
    assert not any(
        c.needs_other_utterance for c in (NoPrompt, SameUtterancePrefix, RandomSegmentPrompt)
    )
    assert SameUtterancePrefix.text_includes_prompt
    assert not any(
        c.text_includes_prompt for c in (NoPrompt, OtherUtterancePrompt, RandomSegmentPrompt)
    )
    assert not NoPrompt.uses_prompt
