"""Training-efficiency changes leave the numbers as they were (issue 14).

- the stack's once-per-forward additive mask gives what a boolean mask per layer gave;
- activation checkpointing gives the same loss and gradients, dropout included;
- attention without weight dropout runs SDPA's fused kernel in training (no math path);
- KV-cached decoding equals the full forward, and a batch equals its items one by one.
"""

from __future__ import annotations

import pytest
import torch
from torch.profiler import profile

from valle.modules import TransformerStack
from valle.modules.attention import MultiHeadAttention, attention_bias
from valle.testing.model import dummy_batch, tiny_config, tiny_model
from valle.train.module import set_activation_checkpointing

ATOL = 1e-5  # float32, same operations in another order at most


def _random_mask(B: int, L: int, K: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, L, K, generator=g) < 0.6
    mask[..., 0] = True  # every query sees at least one key
    return mask


def test_attention_bias_is_additive_and_drops_an_all_true_mask() -> None:
    mask = _random_mask(2, 5, 7)
    bias = attention_bias(mask)
    assert bias is not None and bias.shape == (2, 1, 5, 7) and bias.dtype == torch.float32
    assert torch.equal(bias[:, 0] == 0, mask) and torch.isinf(bias[:, 0][~mask]).all()
    assert attention_bias(torch.ones(2, 5, 7, dtype=torch.bool)) is None
    assert attention_bias(None) is None
    assert attention_bias(mask, torch.bfloat16).dtype == torch.bfloat16  # type: ignore[union-attr]


def test_attention_with_the_bias_equals_attention_with_the_boolean_mask() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(32, 4).eval()
    x = torch.randn(2, 6, 32)
    mask = _random_mask(2, 6, 6)
    assert torch.allclose(attn(x, mask), attn(x, attention_bias(mask)), atol=ATOL)


def test_stack_output_equals_layers_fed_the_boolean_mask_one_by_one() -> None:
    torch.manual_seed(0)
    stack = TransformerStack(3, 32, 4, 64).eval()
    x = torch.randn(2, 9, 32)
    mask = _random_mask(2, 9, 9, seed=1)
    h = x
    for layer in stack.layers:  # what the stack did before: the bool mask to every layer
        h = layer(h, mask)
    assert torch.allclose(stack(x, mask), stack.final_norm(h), atol=ATOL)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(dropout: float) -> None:
    cfg = tiny_config(dropout=dropout)
    batch = dummy_batch(cfg, 3, seed=2)
    results = []
    for on in (False, True):
        model = tiny_model(seed=0, dropout=dropout).train()
        assert set_activation_checkpointing(model, on) == 2  # the AR's and the NAR's stacks
        torch.manual_seed(7)  # the same dropout masks and NAR stage draws
        loss, _ = model.loss(batch, generator=torch.Generator().manual_seed(3))  # type: ignore[operator]
        loss.backward()
        results.append((loss.detach(), _grads(model)))
    (loss0, g0), (loss1, g1) = results
    assert torch.allclose(loss0, loss1, atol=ATOL), (loss0, loss1)
    assert g0.keys() == g1.keys() and g0
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=ATOL), name


def test_checkpointing_is_off_by_default_and_off_in_eval() -> None:
    model = tiny_model(seed=0)
    stacks = [m for m in model.modules() if isinstance(m, TransformerStack)]
    assert stacks and not any(s.checkpointing for s in stacks)


def _layer_calls(stack: TransformerStack, train: bool, grad: bool) -> int:
    """Forward calls of the stack's first layer over one forward (+ backward with grad)."""
    layer = stack.layers[0]
    forward, calls = layer.forward, [0]

    def counted(*args: object, **kwargs: object) -> torch.Tensor:
        calls[0] += 1  # (module hooks do not fire in torch's recomputation; forward does)
        return forward(*args, **kwargs)

    layer.forward = counted  # type: ignore[method-assign]
    try:
        x = torch.randn(2, 5, 32, requires_grad=grad)
        stack.train(train)
        with torch.set_grad_enabled(grad):
            y = stack(x, _random_mask(2, 5, 5))
            if grad:
                y.sum().backward()
    finally:
        del layer.forward
    return calls[0]


def test_checkpointing_recomputes_each_layer_in_training_only() -> None:
    """The equivalence test above passes just as well when nothing is recomputed; this one
    says the recomputation happens (a layer runs again in the backward pass), and only while
    training with gradients."""
    torch.manual_seed(0)
    stack = TransformerStack(2, 32, 4, 64)
    assert _layer_calls(stack, train=True, grad=True) == 1  # off by default
    stack.checkpointing = True
    assert _layer_calls(stack, train=True, grad=True) == 2  # forward + recompute
    assert _layer_calls(stack, train=False, grad=True) == 1  # eval: off
    assert _layer_calls(stack, train=True, grad=False) == 1  # no grad: nothing to keep


def _sdpa_kernels(model: torch.nn.Module, batch: dict) -> set[str]:
    with profile() as prof:
        loss, _ = model.loss(batch)  # type: ignore[operator]
        loss.backward()
    return {e.key for e in prof.key_averages() if "scaled_dot_product" in e.key}


def test_training_without_attention_dropout_runs_the_fused_kernel() -> None:
    """Dropout on the attention weights sends SDPA to its math path on the CPU, which keeps
    (B, H, L, K) tensors per layer; ``attention_dropout=0`` (residual dropout kept) does not."""
    over = ["ar.backbone.attention_dropout=0", "nar.backbone.attention_dropout=0"]
    batch = dummy_batch(tiny_config(dropout=0.1), 2, seed=0)
    fused = _sdpa_kernels(tiny_model(dropout=0.1, overrides=over).train(), batch)
    math = _sdpa_kernels(tiny_model(dropout=0.1).train(), batch)
    assert not any("math" in k for k in fused) and any("flash" in k for k in fused), fused
    assert any("math" in k for k in math), math  # the default keeps the old behaviour


def test_attention_dropout_is_its_own_setting() -> None:
    model = tiny_model(dropout=0.1, overrides=["ar.backbone.attention_dropout=0.05"])
    ar_attn = model.ar.backbone.layers[0].attn  # type: ignore[union-attr,index]
    nar_attn = model.nar.backbone.layers[0].attn  # type: ignore[union-attr,index]
    assert ar_attn.dropout == 0.05 and nar_attn.dropout == 0.1  # null: the same as dropout


def test_cached_decoding_equals_the_full_forward_with_padded_rows() -> None:
    model = tiny_model(seed=1).eval()
    ar = model.ar  # type: ignore[union-attr]
    g = torch.Generator().manual_seed(0)
    text = torch.randint(1, 12, (2, 6), generator=g)
    text_lens = torch.tensor([6, 3])
    audio = torch.randint(0, 16, (2, 9), generator=g)  # (B, N) first-codebook inputs
    audio_lens = torch.tensor([9, 5])
    with torch.no_grad():
        full = ar(text, text_lens, audio, audio_lens)  # (B, N, V)
        start = 3
        out, cache = ar.prefill(text, text_lens, audio[:, :start], torch.tensor([start, start]))
        assert torch.allclose(out, full[:, start - 1], atol=ATOL)
        for n in range(start, 9):
            pos = ar.audio_positions(torch.ones(2, dtype=torch.long), 1, torch.tensor([n, n]))
            out = ar.step(audio[:, n], pos, cache)
            assert torch.allclose(out[0], full[0, n], atol=ATOL), n
            if n < 5:  # row 1 is 5 steps long
                assert torch.allclose(out[1], full[1, n], atol=ATOL), n


def test_a_batch_computes_what_each_item_computes_alone() -> None:
    model = tiny_model(seed=2).eval()
    cfg = tiny_config()
    batch = dummy_batch(cfg, 3, seed=4)
    ar = model.ar  # type: ignore[union-attr]
    text, tl = batch["text_tokens"], batch["text_lens"]
    codes, cl = batch["audio_codes"][..., 0], batch["audio_lens"]
    with torch.no_grad():
        together = ar(text, tl, codes, cl)  # (B, N, V)
        for b in range(3):
            s, n = int(tl[b]), int(cl[b])
            alone = ar(text[b : b + 1, :s], tl[b : b + 1], codes[b : b + 1, :n], cl[b : b + 1])
            assert torch.allclose(together[b, :n], alone[0], atol=ATOL), b


def test_train_config_option_turns_checkpointing_on_in_the_training_module() -> None:
    from valle.train.config import TrainConfig
    from valle.train.module import TrainingModule

    model = tiny_model(seed=0)
    TrainingModule(model, TrainConfig(activation_checkpointing=True))
    stacks = [m for m in model.modules() if isinstance(m, TransformerStack)]
    assert len(stacks) == 2 and all(s.checkpointing for s in stacks)


def test_a_run_saved_before_attention_dropout_existed_still_resumes() -> None:
    from valle.config import to_dict
    from valle.train.checkpoint import config_mismatch
    from valle.train.module import _filled_model_config

    model = tiny_model(seed=0)
    now = to_dict(model.config)  # type: ignore[union-attr]
    old = to_dict(model.config)  # type: ignore[union-attr]
    for part in ("ar", "nar"):
        del old[part]["backbone"]["attention_dropout"]  # written by an older valle
    assert config_mismatch(old, now)  # what the resume check compared before
    assert config_mismatch(_filled_model_config(old, model), now) == []
    old["ar"]["backbone"]["d_model"] = 64  # a real difference is still one
    assert config_mismatch(_filled_model_config(old, model), now)
