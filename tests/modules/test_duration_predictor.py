"""The duration predictor: it learns a token -> duration mapping, reads the speaking rate,
fills an unknown rate with the training mean, predicts >= 1 frame per valid token, and predicts
the mean duration (not the median) when durations vary around it."""

from __future__ import annotations

import copy

import torch

from valle.modules.duration_predictor import DurationPredictorConfig, speaking_rate


def test_speaking_rate_is_nan_without_frames_or_tokens() -> None:
    r = speaking_rate(torch.tensor([20, 0, 5]), torch.tensor([4, 3, 0]))
    assert torch.isclose(r[0], torch.tensor(5.0).log()) and r[1:].isnan().all()


def test_it_learns_durations_and_uses_the_rate() -> None:
    torch.manual_seed(0)
    emb = torch.nn.Embedding(6, 16)
    net = DurationPredictorConfig(channels=32, layers=2).build(16)
    opt = torch.optim.Adam([*net.parameters(), *emb.parameters()], 1e-2)
    ids = torch.randint(1, 6, (8, 7))
    lens = torch.tensor([7, 7, 7, 7, 5, 5, 5, 5])
    slow = torch.tensor([1, 0] * 4, dtype=torch.bool)  # slow rows take twice the frames
    d = ids * (1 + slow[:, None].long()) * (torch.arange(7) < lens[:, None])
    rate = speaking_rate(d.sum(-1), lens)
    for _ in range(300):
        loss = net.loss(emb(ids), lens, rate, d)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    pred = net.predict(emb(ids), lens, rate)
    assert net.log_variance < 0.01  # no residual left: the mean is the median
    assert torch.equal(pred, d)  # exact after rounding, 0 on padding
    assert torch.isclose(net.default_rate, rate.mean(), atol=0.5)
    unknown = net.predict(emb(ids), lens, torch.full((8,), float("nan")))
    assert (unknown[:, :5] >= 1).all()  # the training mean rate stands in


def test_it_predicts_the_mean_duration_of_log_normal_phonemes() -> None:
    """Durations exp(mu_token + 0.5 * noise): the median exp(mu) would make every sentence
    about exp(0.5**2 / 2) = 1.13 times too short; the predictor's totals match the data's."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(6, 16)
    net = DurationPredictorConfig(channels=32, layers=2).build(16)
    opt = torch.optim.Adam([*net.parameters(), *emb.parameters()], 1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 250, 0.1)
    lens, no_rate = torch.full((32,), 12), torch.full((32,), float("nan"))
    mu = torch.log(torch.tensor([0.0, 8, 12, 16, 20, 24]))

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.randint(1, 6, (32, 12))
        return ids, torch.exp(mu[ids] + 0.5 * torch.randn(32, 12)).round().clamp(min=1).long()

    for _ in range(500):
        ids, d = sample()
        loss = net.loss(emb(ids), lens, no_rate, d)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    assert 0.2 < net.log_variance < 0.3  # 0.25 = 0.5**2
    ids, _ = sample()
    expected = torch.exp(mu[ids] + 0.5**2 / 2).sum()  # the data's mean total
    total = net.predict(emb(ids), lens, no_rate).sum()
    assert abs(total / expected - 1) < 0.05, (total, expected)
    median = copy.deepcopy(net)
    median.log_variance.fill_(float("nan"))
    assert median.predict(emb(ids), lens, no_rate).sum() / expected < 0.9


def test_a_checkpoint_without_the_variance_estimate_keeps_its_median() -> None:
    import pytest

    from valle.io.checkpoint import CheckpointMismatchError, load_weights

    torch.manual_seed(0)
    net = DurationPredictorConfig(channels=8, layers=1).build(4)
    old = {k: v for k, v in net.state_dict().items() if k != "log_variance"}
    net.log_variance.fill_(0.3)
    load_weights(net, old, source="old.pt")  # strict, but the newer buffer is defaulted
    assert net.log_variance.isnan()
    x, lens, rate = torch.randn(2, 5, 4), torch.tensor([5, 3]), torch.zeros(2)
    valid = torch.arange(5) < lens[:, None]
    median = torch.exp(net(x, lens, rate)).round().clamp(min=1).long() * valid
    assert torch.equal(net.predict(x, lens, rate), median)
    no_weight = {k: v for k, v in old.items() if k != "out.weight"}
    with pytest.raises(CheckpointMismatchError, match="out.weight"):  # weights never defaulted
        load_weights(net, no_weight, source="old.pt")
