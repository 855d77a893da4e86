"""Mask policies never look ahead (property tests, on the masks and through the model)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from valle.ar.masks import CausalMask, PrefixLMMask, attention_mask
from valle.modules.positions import AUDIO, TEXT, SegmentPositions
from valle.testing.model import tiny_model

lens_st = st.lists(st.tuples(st.integers(1, 6), st.integers(1, 7)), min_size=1, max_size=3)


def _packed(text_lens: list[int], audio_lens: list[int]) -> SegmentPositions:
    t = SegmentPositions.span(TEXT, torch.tensor(text_lens), max(text_lens))
    a = SegmentPositions.span(AUDIO, torch.tensor(audio_lens), max(audio_lens))
    return t.cat(a)


@settings(max_examples=40, deadline=None)
@given(lens=lens_st)
def test_mask_policies_structure(lens: list[tuple[int, int]]) -> None:
    pos = _packed([s for s, _ in lens], [t for _, t in lens])
    is_audio = pos.segment == AUDIO
    q_audio, k_audio = is_audio[:, :, None], is_audio[:, None, :]
    later = pos.index[:, None, :] > pos.index[:, :, None]  # key after query, same-segment index
    for policy in (PrefixLMMask(), CausalMask()):
        m = attention_mask(policy, pos, pos)
        assert not (m & q_audio & k_audio & later).any(), "audio looked at future audio"
        assert not (m & ~q_audio & k_audio).any(), "text looked at audio"
        assert not (m & ~pos.valid[:, None, :]).any(), "padding key visible"
        assert m.any(-1).all(), "a query row sees nothing (NaN attention)"
        # audio sees all valid text
        text_keys = (~k_audio & pos.valid[:, None, :]).expand_as(m)
        assert (m | ~(q_audio & text_keys)).all()
    prefix = attention_mask(PrefixLMMask(), pos, pos)
    causal = attention_mask(CausalMask(), pos, pos)
    text_pair = ~q_audio & ~k_audio & pos.valid[:, None, :]
    assert (prefix | ~text_pair).all(), "prefix mask: text must see all text"
    assert not (causal & text_pair & later).any(), "causal mask: text looked ahead"


@settings(max_examples=8, deadline=None)
@given(
    mask=st.sampled_from(["prefix", "causal"]),
    cut=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_future_audio_does_not_change_earlier_logits(mask: str, cut: int, seed: int) -> None:
    model = tiny_model(mask=mask).eval()
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(1, 12, (2, 5), generator=g)
    text_lens = torch.tensor([5, 3])
    audio = torch.randint(0, 16, (2, 10), generator=g)
    lens = torch.tensor([10, 8])
    perturbed = audio.clone()
    perturbed[:, cut:] = torch.randint(0, 16, (2, 10 - cut), generator=g)
    with torch.no_grad():
        a = model.ar(text, text_lens, audio, lens)
        b = model.ar(text, text_lens, perturbed, lens)
        # logits at audio inputs < cut see only inputs < cut
        assert (a[:, :cut] - b[:, :cut]).abs().max() <= 1e-5
        if not torch.equal(audio[:, cut:], perturbed[:, cut:]):
            assert (a[:, cut:] - b[:, cut:]).abs().max() > 0  # the test can fail


def test_causal_text_does_not_see_later_text() -> None:
    model = tiny_model(mask="causal").eval()
    text = torch.tensor([[3, 4, 5, 6, 7]])
    other = torch.tensor([[3, 4, 9, 9, 9]])
    x1, p1 = model.ar.embed_text(text, torch.tensor([5]))
    x2, p2 = model.ar.embed_text(other, torch.tensor([5]))
    with torch.no_grad():
        h1 = model.ar.backbone(x1, attention_mask(model.ar.mask, p1, p1))
        h2 = model.ar.backbone(x2, attention_mask(model.ar.mask, p2, p2))
    assert (h1[:, :2] - h2[:, :2]).abs().max() <= 1e-5
    assert (h1[:, 2:] - h2[:, 2:]).abs().max() > 1e-4
