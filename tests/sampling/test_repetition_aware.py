import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from valle.sampling import FilteredSampler, Greedy, RepetitionAwareSampler, TopP, repetition_ratio

V = 2000
FORCED = 7  # the nucleus token


def forced_logits(b: int) -> torch.Tensor:
    """FORCED is the arg-max (so a tiny top-p always picks it) but has only ~0.02% of the
    mass of the full distribution, so random sampling almost never returns it."""
    logits = torch.zeros(b, V)
    logits[:, FORCED] = 0.1
    return logits


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def history_with(repeats: int, length: int, b: int = 1) -> torch.Tensor:
    """(b, length) history whose last 10 tokens contain FORCED exactly ``repeats`` times
    (other tokens distinct), with FORCED also everywhere before the window."""
    h = torch.full((b, length), FORCED, dtype=torch.long)
    window = min(10, length)
    filler = torch.arange(100, 100 + window)  # distinct, never FORCED
    h[:, length - window :] = filler
    if repeats:
        h[:, length - repeats :] = FORCED
    return h


def test_ratio_counts_only_the_window_and_divides_by_k():
    h = torch.tensor([[1, 1, 1, 2, 3, 1], [5, 5, 5, 5, 5, 5]])
    cand = torch.tensor([1, 5])
    assert repetition_ratio(cand, h, window=3).tolist() == [1 / 3, 1.0]
    assert repetition_ratio(cand, h, window=10).tolist() == [0.4, 0.6]  # t < K: still / K
    assert repetition_ratio(cand, h[:, :0], window=10).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("repeats", range(0, 11))
def test_falls_back_exactly_when_the_share_exceeds_t_r(repeats):
    ras = RepetitionAwareSampler(nucleus=FilteredSampler([TopP(1e-6)]), window=10, threshold=0.1)
    b = 32
    ids = ras(forced_logits(b), history_with(repeats, 25, b), gen(repeats))
    if repeats / 10 > 0.1:  # 2 or more of the last 10 tokens
        # random sampling returns FORCED with probability ~1/V only
        assert (ids != FORCED).float().mean() > 0.9, "must resample from the full distribution"
        assert len(set(ids.tolist())) > b // 2  # genuinely random, not another fixed choice
    else:
        assert (ids == FORCED).all(), "must keep the nucleus choice"


def test_threshold_boundary_is_strict():
    ras = RepetitionAwareSampler(nucleus=Greedy(), window=4, threshold=0.5)
    cand = torch.tensor([FORCED])
    two = torch.tensor([[FORCED, 1, FORCED, 2]])
    three = torch.tensor([[FORCED, FORCED, 1, FORCED]])
    assert not ras.should_resample(cand, two).item()  # 2/4 == 0.5, not > 0.5
    assert ras.should_resample(cand, three).item()


def test_per_row_decisions():
    ras = RepetitionAwareSampler(nucleus=FilteredSampler([TopP(1e-6)]))
    h = torch.cat([history_with(0, 12), history_with(5, 12), history_with(1, 12)])
    ids = ras(forced_logits(3), h, gen(0))
    assert ids[0] == FORCED and ids[1] != FORCED and ids[2] == FORCED


def test_deterministic_under_a_seed():
    ras = RepetitionAwareSampler()
    logits = torch.randn(16, 100, generator=gen(0))
    h = torch.randint(0, 100, (16, 30), generator=gen(1))
    assert torch.equal(ras(logits, h, gen(9)), ras(logits, h, gen(9)))
    assert not torch.equal(ras(logits, h, gen(9)), ras(logits, h, gen(10)))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(2, 30),
    st.integers(0, 40),
    st.floats(0.05, 1.0),
    st.integers(0, 2**31 - 1),
)
def test_property_output_is_nucleus_choice_or_a_fallback(b, v, t, p, seed):
    g = gen(seed)
    logits = torch.randn(b, v, generator=g) * 3
    history = torch.randint(0, v, (b, t), generator=g)
    ras = RepetitionAwareSampler(top_p=p)
    ids = ras(logits, history, gen(seed))
    # replay the two draws with the same stream
    g2 = gen(seed)
    cand = FilteredSampler([TopP(p)])(logits, history, g2)
    full = FilteredSampler([])(logits, history, g2)
    repeat = repetition_ratio(cand, history, 10) > 0.1
    assert torch.equal(ids, torch.where(repeat, full, cand))
    assert ((ids >= 0) & (ids < v)).all()


def test_the_loop_breaker_works_in_a_decoding_loop():
    """With a nucleus forced onto one token, plain nucleus sampling repeats it forever; RAS
    keeps the share of that token in any window of 10 small."""
    logits = forced_logits(1)
    nucleus = FilteredSampler([TopP(1e-6)])
    ras = RepetitionAwareSampler(nucleus=nucleus)
    g = gen(0)
    h_plain = torch.zeros(1, 0, dtype=torch.long)
    h_ras = torch.zeros(1, 0, dtype=torch.long)
    for _ in range(50):
        h_plain = torch.cat([h_plain, nucleus(logits, h_plain, g)[:, None]], dim=1)
        h_ras = torch.cat([h_ras, ras(logits, h_ras, g)[:, None]], dim=1)
    assert (h_plain == FORCED).all()
    share = (h_ras == FORCED).double().mean().item()
    assert 0.05 < share <= 0.25  # about 1 in 10: kept until it would repeat a second time


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": 0}, "window"),
        ({"threshold": 1.0}, r"\[0, 1\)"),
        ({"threshold": float("nan")}, "finite"),
        ({"top_p": -0.1}, "0 <= p"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RepetitionAwareSampler(**kwargs)


def test_paper_defaults():
    ras = RepetitionAwareSampler()
    assert ras.window == 10 and ras.threshold == 0.1
