"""The duration predictor: it learns a token -> duration mapping, reads the speaking rate,
fills an unknown rate with the training mean, and predicts >= 1 frame per valid token."""

from __future__ import annotations

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
    assert torch.equal(pred, d)  # exact after rounding, 0 on padding
    assert torch.isclose(net.default_rate, rate.mean(), atol=0.5)
    unknown = net.predict(emb(ids), lens, torch.full((8,), float("nan")))
    assert (unknown[:, :5] >= 1).all()  # the training mean rate stands in
