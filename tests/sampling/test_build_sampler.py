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


def test_config_sections_build_samplers_and_hold_only_their_numbers():
    import dataclasses

    from valle.config import ConfigError, from_dict
    from valle.sampling import SamplerConfig

    fields = {
        k: {f.name for f in dataclasses.fields(c)} - {"kind"}
        for k, c in SamplerConfig.__kinds__.items()
    }
    assert fields == {
        "greedy": set(),
        "sample": {"temperature", "top_k", "top_p"},
        "repetition_aware": {"temperature", "top_k", "top_p", "window", "threshold"},
    }
    cfg = from_dict(
        SamplerConfig.kind_class("repetition_aware"),
        {"kind": "repetition_aware", "top_p": 0.7, "window": 5},
    )
    ras = build_sampler(cfg)
    assert isinstance(ras, RepetitionAwareSampler) and (ras.window, ras.threshold) == (5, 0.1)
    assert [f.p for f in ras.nucleus.filters] == [0.7]
    with pytest.raises(ConfigError, match="window"):  # greedy reads no window
        from_dict(SamplerConfig.kind_class("greedy"), {"kind": "greedy", "window": 5})
    with pytest.raises(ConfigError, match="window K"):  # numbers are checked at load time
        from_dict(SamplerConfig.kind_class("repetition_aware"), {"window": 0})
    with pytest.raises(TypeError, match="not both"):
        build_sampler(cfg, top_k=3)
