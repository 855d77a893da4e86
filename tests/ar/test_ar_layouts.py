"""Acoustic layouts round-trip and mark padding (property tests)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from valle.ar.layouts import FirstCodebookLayout, GroupedCodeLayout


@settings(max_examples=40, deadline=None)
@given(
    lens=st.lists(st.integers(0, 9), min_size=1, max_size=4),
    group=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_layouts_round_trip(lens: list[int], group: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    T = max(lens)
    codes = torch.randint(0, 50, (len(lens), T, 3), generator=g)
    lens_t = torch.tensor(lens)
    for layout in (FirstCodebookLayout(), GroupedCodeLayout(group)):
        G = layout.frames_per_step
        steps, step_lens, valid = layout.to_steps(codes, lens_t)
        assert steps.shape[2:] == layout.step_shape
        assert step_lens.tolist() == [-(-n // G) for n in lens]
        for b, n in enumerate(lens):
            frames = layout.from_steps(steps[b, : int(step_lens[b])])
            assert frames.shape == (int(step_lens[b]) * G, 1)
            assert torch.equal(frames[:n, 0], codes[b, :n, 0])
            assert int(valid[b].sum()) == n
            assert torch.equal(
                layout.from_steps(valid[b, : int(step_lens[b])].long())[:, 0],
                (torch.arange(int(step_lens[b]) * G) < n).long(),
            )
        p_steps, p_lens = layout.prompt_steps(codes, lens_t)
        assert p_lens.tolist() == [n // G for n in lens]
        for b, n in enumerate(lens):
            whole = (n // G) * G
            assert torch.equal(layout.from_steps(p_steps[b, : n // G])[:, 0], codes[b, :whole, 0])


def test_group_embedding_shape() -> None:
    emb = GroupedCodeLayout(4).embedding(10, 32)
    assert emb(torch.zeros(2, 5, 4, dtype=torch.long)).shape == (2, 5, 32)
