import pytest
import torch

from valle.sampling import (
    FilteredSampler,
    Greedy,
    RepetitionAwareSampler,
    Temperature,
    TopK,
    TopP,
    build_sampler,
)


def test_kinds_build_the_right_objects():
    assert isinstance(build_sampler("greedy", top_k=5), Greedy)
    s = build_sampler("sample", temperature=0.7, top_k=20, top_p=0.9)
    assert isinstance(s, FilteredSampler)
    assert [type(f) for f in s.filters] == [Temperature, TopK, TopP]
    assert [type(f) for f in build_sampler("sample", top_p=0.5).filters] == [TopP]
    ras = build_sampler("repetition_aware", temperature=0.9, top_p=0.7, window=5, threshold=0.2)
    assert isinstance(ras, RepetitionAwareSampler)
    assert (ras.window, ras.threshold) == (5, 0.2)
    assert [type(f) for f in ras.nucleus.filters] == [Temperature, TopP]
    assert [type(f) for f in ras.fallback.filters] == [Temperature]


def test_built_sampler_matches_hand_made_one():
    logits = torch.randn(8, 40, generator=torch.Generator().manual_seed(0))
    hist = torch.zeros(8, 0, dtype=torch.long)
    a = build_sampler("sample", temperature=0.8, top_k=10)(
        logits, hist, torch.Generator().manual_seed(1)
    )
    b = FilteredSampler([Temperature(0.8), TopK(10)])(
        logits, hist, torch.Generator().manual_seed(1)
    )
    assert torch.equal(a, b)


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match="greedy, sample, repetition_aware"):
        build_sampler("beam")
