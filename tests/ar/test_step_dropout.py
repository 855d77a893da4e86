"""Step dropout (valle.ar.step_dropout): hides fed-back steps in training only."""

from __future__ import annotations

import pytest
import torch

from valle.ar.pointer import STEP_CODE, STEP_PHONEME
from valle.ar.step_dropout import StepDropout, add_step_dropout
from valle.config import ConfigError
from valle.testing.model import tiny_config, tiny_model


def test_hook_drops_whole_steps_in_training_only() -> None:
    torch.manual_seed(0)
    emb = add_step_dropout(torch.nn.Embedding(10, 8), 0.5)
    ids = torch.randint(1, 10, (4, 500))
    emb.train()
    out = emb(ids)  # (B, N, D)
    zero = (out == 0).all(dim=-1)  # (B, N) whole step zeroed
    partly = ((out == 0).any(dim=-1) & ~zero).any()
    assert not bool(partly)  # a step is kept or dropped whole
    assert 0.45 < float(zero.float().mean()) < 0.55
    kept = ~zero
    assert torch.equal(out[kept], emb.weight[ids][kept])  # no rescaling of the kept steps
    emb.eval()
    assert torch.equal(emb(ids), emb.weight[ids])


def test_zero_adds_no_hook_and_bad_share_is_refused() -> None:
    emb = torch.nn.Embedding(4, 2)
    add_step_dropout(emb, 0.0)
    assert not emb._forward_hooks
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        StepDropout(1.0)
    with pytest.raises(ConfigError, match="ar.step_dropout"):
        tiny_config("valle", overrides=["ar.step_dropout=1.5"])


@pytest.mark.parametrize("variant", ["valle", "vallr"])
def test_config_turns_it_on_without_new_weights(variant: str) -> None:
    plain = tiny_model(0, variant)
    dropped = tiny_model(0, variant, overrides=["ar.step_dropout=0.3"])
    assert plain.state_dict().keys() == dropped.state_dict().keys()
    plain.eval(), dropped.eval()
    # eval: identical (same weights, the hook is inactive)
    dropped.load_state_dict(plain.state_dict())
    steps = torch.randint(0, 8, (2, 6))
    if variant == "vallr":
        steps = torch.stack([steps, torch.zeros_like(steps), torch.full_like(steps, 5)], -1)
    assert torch.equal(plain.ar.audio_embedding(steps), dropped.ar.audio_embedding(steps))


def test_aligned_ar_keeps_the_phoneme_of_a_dropped_step() -> None:
    model = tiny_model(0, "vallr", overrides=["ar.step_dropout=0.9"]).train()
    torch.manual_seed(0)
    steps = torch.zeros(2, 200, 3, dtype=torch.long)
    steps[..., STEP_CODE] = 3
    steps[..., STEP_PHONEME] = 5
    out = model.ar.audio_embedding(steps)  # (B, N, D)
    phon = model.ar.text_embedding(torch.tensor(5))
    code = model.ar.audio_embedding.codes.weight[3]
    dropped = torch.isclose(out, phon.expand_as(out), atol=1e-6).all(-1)
    kept = torch.isclose(out, (phon + code).expand_as(out), atol=1e-6).all(-1)
    assert bool((dropped | kept).all())
    assert 0.8 < float(dropped.float().mean()) < 0.97
