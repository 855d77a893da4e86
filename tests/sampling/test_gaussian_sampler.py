import math

import pytest
import torch

from valle.sampling import GaussianSampler


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_moments_match_mu_and_sigma():
    mu = torch.tensor([[1.0, -2.0, 0.5]]).expand(20000, 3)
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.25)]]).expand(20000, 3)
    z = GaussianSampler()(mu, logvar, gen(0))
    assert torch.allclose(z.mean(0), mu[0], atol=0.05)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 2.0, 0.5]), atol=0.05)


def test_scale_zero_is_the_mean_and_scale_shrinks_spread():
    mu, logvar = torch.randn(500, 4, generator=gen(1)), torch.zeros(500, 4)
    assert torch.equal(GaussianSampler(0.0)(mu, logvar, gen(2)), mu)
    full = GaussianSampler(1.0)(mu, logvar, gen(2)) - mu
    half = GaussianSampler(0.5)(mu, logvar, gen(2)) - mu
    assert torch.allclose(half, 0.5 * full, atol=1e-5)


def test_seeded_draws_repeat():
    mu, logvar = torch.zeros(3, 8), torch.zeros(3, 8)
    s = GaussianSampler()
    assert torch.equal(s(mu, logvar, gen(7)), s(mu, logvar, gen(7)))
    assert not torch.equal(s(mu, logvar, gen(7)), s(mu, logvar, gen(8)))


def test_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        GaussianSampler()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=">= 0"):
        GaussianSampler(-1.0)
