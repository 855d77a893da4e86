import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from valle.sampling import (
    FilteredSampler,
    Greedy,
    RepetitionAwareSampler,
    Temperature,
    TokenSampler,
    TopK,
    TopP,
    draw,
)
from valle.sampling.base import check_logit_values


def empty_history(b: int) -> torch.Tensor:
    return torch.zeros(b, 0, dtype=torch.long)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


logit_rows = st.integers(min_value=1, max_value=4).flatmap(
    lambda b: st.integers(min_value=1, max_value=40).flatmap(
        lambda v: st.lists(
            st.lists(
                st.floats(min_value=-20, max_value=20, allow_nan=False, width=32),
                min_size=v,
                max_size=v,
            ),
            min_size=b,
            max_size=b,
        )
    )
)


def nucleus_sets(logits: torch.Tensor, p: float) -> list[set[int]]:
    """Reference nucleus, computed the slow way: add tokens by falling probability until the
    kept mass reaches p (a token tied with the boundary may be in or out)."""
    out = []
    for row in torch.softmax(logits.double(), dim=-1):
        order = sorted(range(len(row)), key=lambda i: -float(row[i]))
        kept, mass = set(), 0.0
        for i in order:
            kept.add(i)
            mass += float(row[i])
            if mass >= p:
                break
        # tokens tied with the last kept one are also acceptable
        last = float(row[order[len(kept) - 1]])
        kept |= {i for i in range(len(row)) if abs(float(row[i]) - last) < 1e-6}
        out.append(kept)
    return out


def test_samplers_follow_the_protocol():
    for s in (Greedy(), FilteredSampler([TopK(3)])):
        assert isinstance(s, TokenSampler)


@settings(max_examples=40, deadline=None)
@given(logit_rows, st.integers(0, 2**31 - 1))
def test_greedy_is_argmax(rows, seed):
    logits = torch.tensor(rows)
    ids = Greedy()(logits, empty_history(len(rows)), gen(seed))
    assert ids.dtype == torch.long and ids.shape == (len(rows),)
    assert torch.equal(logits.gather(1, ids[:, None]).squeeze(1), logits.max(dim=1).values)


@settings(max_examples=40, deadline=None)
@given(logit_rows, st.integers(1, 50), st.integers(0, 2**31 - 1))
def test_top_k_stays_within_the_k_highest(rows, k, seed):
    logits = torch.tensor(rows)
    ids = FilteredSampler([TopK(k)])(logits, empty_history(len(rows)), gen(seed))
    kth = logits.topk(min(k, logits.shape[1]), dim=1).values[:, -1]  # (B,)
    assert (logits.gather(1, ids[:, None]).squeeze(1) >= kth).all()
    filtered = TopK(k)(logits)
    assert (torch.isfinite(filtered).sum(1) == min(k, logits.shape[1])).all()


@settings(max_examples=40, deadline=None)
@given(logit_rows, st.floats(0.01, 1.0), st.integers(0, 2**31 - 1))
def test_top_p_stays_within_the_nucleus(rows, p, seed):
    logits = torch.tensor(rows)
    ids = FilteredSampler([TopP(p)])(logits, empty_history(len(rows)), gen(seed))
    allowed = nucleus_sets(logits, p)
    for b, i in enumerate(ids.tolist()):
        assert i in allowed[b]


def test_top_p_known_case():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(TopP(0.8)(probs.log()))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 reaches 0.8
    kept = torch.isfinite(TopP(0.81)(probs.log()))
    assert kept.tolist() == [[True, True, True, False]]
    kept = torch.isfinite(TopP(1e-9)(probs.log()))
    assert kept.tolist() == [[True, False, False, False]]  # the top token is always kept
    kept = torch.isfinite(TopP(0)(probs.log()))
    assert kept.tolist() == [[True, False, False, False]]  # p = 0: the top token alone (greedy)


def test_top_p_smallest_set_reaching_p_exactly():
    # four equal tokens (probabilities exactly 0.25): two of them reach p = 0.5, a third is not
    # needed; p just above 0.5 needs the third one
    logits = torch.zeros(1, 4)
    assert torch.isfinite(TopP(0.5)(logits)).sum().item() == 2
    assert torch.isfinite(TopP(0.5001)(logits)).sum().item() == 3
    assert torch.isfinite(TopP(1.0)(logits)).sum().item() == 4


def test_filters_compose_in_order():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    sampler = FilteredSampler([Temperature(0.5), TopK(3), TopP(0.9)])
    expected = TopP(0.9)(TopK(3)(logits / 0.5))
    assert torch.equal(sampler.filter(logits), expected)
    assert not torch.isfinite(sampler.filter(logits)[0, 3:]).any()


def test_filters_do_not_modify_their_input():
    logits = torch.randn(3, 10, generator=gen(0))
    copy = logits.clone()
    for f in (Temperature(0.7), TopK(2), TopP(0.5)):
        f(logits)
    assert torch.equal(logits, copy)


def test_same_seed_same_draws_and_different_seeds_differ():
    logits = torch.zeros(64, 50)  # uniform: draws are pure randomness
    sampler = FilteredSampler([Temperature(1.3), TopK(40)])
    a = sampler(logits, empty_history(64), gen(123))
    b = sampler(logits, empty_history(64), gen(123))
    c = sampler(logits, empty_history(64), gen(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_rows_are_sampled_independently():
    # row 0 can only be token 2, row 1 only token 7
    logits = torch.full((2, 10), float("-inf"))
    logits[0, 2] = 0.0
    logits[1, 7] = 0.0
    ids = FilteredSampler([])(logits, empty_history(2), gen(0))
    assert ids.tolist() == [2, 7]


def test_draw_follows_the_distribution():
    probs = torch.tensor([0.7, 0.2, 0.1])
    ids = draw(probs.log().expand(20000, 3), gen(5))
    freq = torch.bincount(ids, minlength=3).double() / 20000
    assert torch.allclose(freq, probs.double(), atol=0.02)


def test_low_temperature_approaches_greedy():
    logits = torch.randn(256, 100, generator=gen(1))
    greedy = Greedy()(logits, empty_history(256))
    cold = FilteredSampler([Temperature(1e-3)])(logits, empty_history(256), gen(2))
    warm = FilteredSampler([Temperature(1.0)])(logits, empty_history(256), gen(2))
    assert torch.equal(cold, greedy)
    assert (warm != greedy).float().mean() > 0.5  # at t = 1 most draws are not the arg-max


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Temperature(0), "Greedy"),
        (lambda: Temperature(float("inf")), "finite"),
        (lambda: TopK(0), "k >= 1"),
        (lambda: TopK(2.5), "integer"),
        (lambda: TopP(-0.1), "0 <= p <= 1"),
        (lambda: TopP(1.5), "0 <= p <= 1"),
    ],
)
def test_bad_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_inputs_are_clear_errors():
    s = FilteredSampler([TopK(2)])
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        s(torch.zeros(5), empty_history(1))
    with pytest.raises(ValueError, match=r"\(B, t\)"):
        s(torch.zeros(2, 5), empty_history(3))
    with pytest.raises(TypeError, match="integer token ids"):
        s(torch.zeros(2, 5), torch.zeros(2, 1))
    with pytest.raises(TypeError, match="floating point"):
        Greedy()(torch.zeros(1, 5, dtype=torch.long), empty_history(1))
    # value checks are separate (one sync per generate call, not per draw)
    with pytest.raises(ValueError, match="NaN"):
        check_logit_values(torch.full((1, 5), float("nan")))
    with pytest.raises(ValueError, match="entirely -inf"):
        check_logit_values(torch.full((2, 5), float("-inf")))
    check_logit_values(torch.zeros(2, 3, 5))  # any leading shape


class _SyncCounting(torch.Tensor):
    """Counts host reads of tensor values (what costs a device sync on an accelerator)."""

    reads = 0
    _READS = {torch.Tensor.__bool__, torch.Tensor.item, torch.Tensor.tolist}
    _READS |= {torch.Tensor.__int__, torch.Tensor.__float__}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in cls._READS:
            cls.reads += 1
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.mark.parametrize(
    "sampler",
    [
        Greedy(),
        FilteredSampler([Temperature(0.9), TopK(5), TopP(0.8)]),
        RepetitionAwareSampler(),
    ],
    ids=["greedy", "filtered", "repetition_aware"],
)
def test_a_draw_reads_no_values_back_to_the_host(sampler):
    """Issue 7: check_logits cost two host syncs per element per AR step."""
    logits = torch.randn(3, 20, generator=gen(0)).as_subclass(_SyncCounting)
    history = torch.randint(0, 20, (3, 12), generator=gen(1))
    _SyncCounting.reads = 0
    sampler(logits, history, gen(2))
    assert _SyncCounting.reads == 0


def test_half_precision_logits():
    logits = torch.randn(4, 30, generator=gen(3)).half()
    ids = FilteredSampler([TopP(0.9)])(logits, empty_history(4), gen(3))
    assert ids.dtype == torch.long and ids.shape == (4,)
