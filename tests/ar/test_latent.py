"""MELLE's continuous parts (valle.ar.latent): each loss against its formula on hand-made
tensors (MELLE Sec 3.3), the KL warm-up (Sec 4.1), the reduction-factor round trip
(Sec 3.4), the pre-net's dropout in training and at inference (Sec 3.2), the latent head."""

from __future__ import annotations

import math

import pytest
import torch

from valle.ar.latent import (
    LatentHead,
    MelFrameLayout,
    PreNet,
    flux_loss,
    kl_loss,
    kl_weight,
    regression_loss,
    stop_loss,
    stop_targets,
)
from valle.sampling.latent import GaussianSampler

# one row of three 2-bin frames, the last one padding
Y = torch.tensor([[[1.0, 2.0], [3.0, -1.0], [9.0, 9.0]]])
MASK = torch.tensor([[True, True, False]])


def test_regression_loss_is_l1_plus_squared_l2_per_frame() -> None:
    pred = torch.tensor([[[2.0, 0.0], [3.0, 1.0], [0.0, 0.0]]])
    # frame 0: |1|+|2| + 1+4 = 8; frame 1: 0+2 + 0+4 = 6; padding ignored -> mean 7
    assert regression_loss(pred, Y, MASK).item() == pytest.approx(7.0)


def test_kl_loss_is_the_closed_form_against_n_y_identity() -> None:
    mu = torch.tensor([[[1.0, 0.0], [3.0, 1.0], [5.0, 5.0]]])
    logvar = torch.tensor([[[0.0, math.log(2.0)], [math.log(0.5), 0.0], [7.0, 7.0]]])
    # 1/2 sum_i (sigma^2 + (mu - y)^2 - 1 - log sigma^2)
    f0 = 0.5 * ((1 + 0 - 1 - 0) + (2 + 4 - 1 - math.log(2.0)))
    f1 = 0.5 * ((0.5 + 0 - 1 - math.log(0.5)) + (1 + 4 - 1 - 0))
    assert kl_loss(mu, logvar, Y, MASK).item() == pytest.approx((f0 + f1) / 2, rel=1e-6)
    # zero exactly when the prediction is N(y, I)
    assert kl_loss(Y, torch.zeros_like(Y), Y, MASK).item() == pytest.approx(0.0)


def test_flux_loss_rewards_moving_away_from_the_previous_target_frame() -> None:
    mu = torch.tensor([[[0.0, 0.0], [4.0, 4.0], [0.0, 0.0]]])
    # only frame 1 has a valid previous frame: -(|4-1| + |4-2|) = -5
    assert flux_loss(mu, Y, MASK).item() == pytest.approx(-5.0)
    # a prediction equal to the previous frame (static output) gets no reward
    still = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]]])
    assert flux_loss(still, Y, MASK).item() == pytest.approx(0.0)


def test_stop_loss_is_bce_with_a_positive_weight() -> None:
    logits = torch.tensor([[0.3, -1.2, 5.0]])
    labels = stop_targets(torch.tensor([2]), 3)
    assert labels.tolist() == [[0.0, 1.0, 0.0]]
    mask = torch.tensor([[True, True, False]])
    sig = torch.sigmoid(logits[0])
    expected = (-math.log(1 - sig[0]) - 100.0 * math.log(sig[1])) / 2
    assert stop_loss(logits, labels, mask, 100.0).item() == pytest.approx(expected, rel=1e-5)


def test_kl_weight_is_zero_during_the_warm_up_then_lambda() -> None:
    assert [kl_weight(s, 0.1, 10_000) for s in (0, 9_999, 10_000, 50_000)] == [0, 0, 0.1, 0.1]
    assert kl_weight(None, 0.1, 10_000) == 0.1  # no step count: the loss after warm-up


@pytest.mark.parametrize("r", [1, 2, 3, 4, 5])
def test_reduction_factor_round_trip(r: int) -> None:
    layout = MelFrameLayout(n_mels=3, reduction=r)
    lens = torch.tensor([11, 7])
    frames = torch.randn(2, 11, 3)
    steps, n, valid = layout.to_steps(frames, lens)
    assert steps.shape == (2, 11 // r, 3 * r) and n.tolist() == [11 // r, 7 // r]
    for b, T in enumerate(lens.tolist()):
        back = layout.from_steps(steps[b, : int(n[b])])  # (n * r, F)
        keep = T - T % r  # the first T mod r frames are dropped, the rest round-trips
        assert torch.equal(back, frames[b, T - keep : T])
        assert valid[b, : int(n[b])].all() and not valid[b, int(n[b]) :].any()
    assert layout.max_steps(torch.tensor([1, r, r + 1])).tolist() == [1, 1, 2]


def test_teacher_forcing_shifts_by_one_step_with_a_zero_bos() -> None:
    layout = MelFrameLayout(n_mels=2, reduction=2)
    frames = torch.arange(12.0).view(1, 6, 2)
    tf = layout.teacher_forcing(frames, torch.tensor([6]))
    assert tf.inputs.shape == tf.targets.shape == (1, 3, 4)
    assert torch.equal(tf.inputs[0, 0], torch.zeros(4))
    assert torch.equal(tf.inputs[0, 1:], tf.targets[0, :-1])
    assert torch.equal(layout.from_steps(tf.targets[0]), frames[0])


def test_prenet_dropout_is_on_in_training_and_at_inference() -> None:
    torch.manual_seed(0)
    net = PreNet(4, 8, hidden=64, dropout=0.5, inference_dropout=0.5)
    x = torch.ones(1, 4)
    for mode in (net.train, net.eval):
        mode()
        a = net(x)
        b = net(x)
        assert not torch.equal(a, b)  # a different mask on every call
        with net.drawing_from(torch.Generator().manual_seed(1)):
            c = net(x)
        with net.drawing_from(torch.Generator().manual_seed(1)):
            d = net(x)
        assert torch.equal(c, d)  # the masks come from the given generator
    net.inference_dropout = 0.0
    net.eval()
    assert torch.equal(net(x), net(x))


def test_latent_head_reparameterises_and_maps_to_frames() -> None:
    torch.manual_seed(0)
    head = LatentHead(d_model=6, step_dim=4, latent=True, hidden=8)
    out = head(torch.randn(3, 6))
    assert out.shape == (3, 2 * 4 + 1)
    parts = head.split(out)
    mean = head.sample(out, None, GaussianSampler(0.0), None)
    assert torch.allclose(mean, parts.mu + head.mlp(parts.mu))  # y' = z + MLP(z), z = mu
    g = torch.Generator().manual_seed(3)
    z = head.draw(parts, GaussianSampler(1.0), g)
    eps = torch.randn(parts.mu.shape, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(z, parts.mu + torch.exp(0.5 * parts.logvar) * eps)
    plain = LatentHead(d_model=6, step_dim=4, latent=False)
    assert plain(torch.randn(3, 6)).shape == (3, 4 + 1) and plain.split(out[:, :5]).logvar is None
