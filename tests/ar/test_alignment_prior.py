"""The guided-attention prior: penalty definition, attention read-out, config and training effect."""

from __future__ import annotations

import torch

from valle.ar.alignment_prior import (
    AlignmentPriorConfig,
    GuidedAttentionPrior,
    diagonal_penalty,
    text_attention,
)
from valle.config import apply_overrides, from_dict, to_dict
from valle.testing.model import dummy_batch, tiny_model


def test_penalty_is_zero_on_the_diagonal_and_grows_away_from_it() -> None:
    w = diagonal_penalty(torch.tensor([4]), torch.tensor([8]), 4, 8, 0.2)[0]  # (N, S)
    for n in range(8):
        s = n // 2  # s / 4 == n / 8 exactly for even n
        if n % 2 == 0:
            assert w[n, s] == 0
        assert w[n, 3] >= w[n, s] if n < 4 else w[n, 0] >= w[n, s]
    assert w[0, 3] > 0.99 and w[7, 0] > 0.99
    # padding (text beyond text_lens, audio beyond audio_lens) costs nothing
    w2 = diagonal_penalty(torch.tensor([2]), torch.tensor([3]), 4, 5, 0.2)[0]
    assert (w2[:, 2:] == 0).all() and (w2[3:] == 0).all()


def test_text_attention_equals_the_models_attention_over_text_keys() -> None:
    torch.manual_seed(0)
    model = tiny_model().eval()
    attn = model.ar.backbone.layers[0].attn
    B, S, N, D = 2, 5, 7, model.ar.backbone.d_model
    x = torch.randn(B, S + N, D)
    text_lens = torch.tensor([5, 3])
    a = text_attention(attn, x, S, text_lens)  # (B, H, N, S)
    assert a.shape == (B, attn.num_heads, N, S)
    torch.testing.assert_close(a.sum(-1), torch.ones(B, attn.num_heads, N))
    assert (a[1, :, :, 3:] == 0).all()  # padded text keys get no weight
    # relative weights among text keys equal the full softmax's (restricted and renormalised)
    q, k, _ = attn.qkv(x).view(B, S + N, 3, attn.num_heads, attn.head_dim).unbind(2)
    full = (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2) / attn.head_dim**0.5).softmax(
        -1
    )
    part = full[0, :, S:, :S]
    torch.testing.assert_close(a[0], part / part.sum(-1, keepdim=True))


def test_prior_adds_a_term_in_training_only_and_trains_toward_the_diagonal() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    batch = dummy_batch(model.config)
    model.ar.alignment_prior = GuidedAttentionPrior(weight=1.0, layers=(0, 1))
    model.train()
    loss, metrics = model.ar.loss(batch)
    assert "attn_prior" in metrics and 0 < float(metrics["attn_prior"]) < 1
    model.eval()
    _, eval_metrics = model.ar.loss(batch)
    assert "attn_prior" not in eval_metrics

    # a weighted prior pulls the attention toward the diagonal: the penalty falls when the
    # prior dominates the loss, and stays put without it
    def penalty_after(weight: float) -> tuple[float, float]:
        torch.manual_seed(0)
        m = tiny_model().train()
        m.ar.alignment_prior = GuidedAttentionPrior(weight=weight, layers=(0, 1))
        opt = torch.optim.Adam(m.ar.parameters(), lr=1e-2)
        values = []
        for _ in range(25):
            loss, met = m.ar.loss(batch)
            values.append(float(met["attn_prior"]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return values[0], values[-1]

    start, end = penalty_after(50.0)
    assert end < 0.5 * start
    _, end_free = penalty_after(0.0)
    assert end < end_free


def test_config_is_off_by_default_and_builds_when_set() -> None:
    model = tiny_model()
    assert model.ar.alignment_prior is None
    cfg = model.config
    d = to_dict(cfg)
    d["ar"]["alignment_prior"] = {"weight": 0.5, "layers": [1]}
    d.pop("variant", None)
    cfg2 = from_dict(type(cfg), d)
    assert cfg2.ar.alignment_prior == AlignmentPriorConfig(weight=0.5, layers=(1,))
    cfg3 = apply_overrides(cfg2, ["ar.alignment_prior.sigma=0.3"])
    prior = cfg3.build().ar.alignment_prior
    assert isinstance(prior, GuidedAttentionPrior)
    assert (prior.weight, prior.sigma, prior.layers) == (0.5, 0.3, (1,))
