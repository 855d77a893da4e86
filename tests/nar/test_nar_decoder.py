"""NAR decoder: loss and gradients, tied heads, AdaLN stage, generation."""

from __future__ import annotations

import pytest
import torch

from valle.testing.model import dummy_batch, tiny_model, tiny_valle_config


@pytest.mark.parametrize("stage_kind", ["adaln", "code_id_token"])
def test_loss_finite_and_gradients_for_every_stage(stage_kind: str) -> None:
    model = tiny_model(dropout=0.1, overrides=[f"nar.stage={stage_kind}"])
    nar = model.nar
    batch = dummy_batch(tiny_valle_config(), batch_size=3, audio_len=(6, 12))
    for stage in range(1, nar.num_codebooks):
        loss, metrics = nar.loss(batch, stage=stage)
        assert torch.isfinite(loss) and set(metrics) == {"loss", "acc", "top10_acc"}
        loss.backward()
    for name, p in nar.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"


def test_random_stage_is_uniform_over_2_to_Q() -> None:
    model = tiny_model()
    batch = dummy_batch(tiny_valle_config(), batch_size=2)
    seen = []
    original = model.nar.forward

    def spy(*args, **kwargs):
        seen.append(args[6])
        return original(*args, **kwargs)

    model.nar.forward = spy  # type: ignore[method-assign]
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        model.nar.loss(batch, generator=g)
    assert set(seen) == {1, 2, 3}  # 0-based codebooks 1..Q-1, the paper's stages 2..Q


def test_head_j_is_tied_to_embedding_j_plus_1() -> None:
    nar = tiny_model().nar
    assert len(nar.heads) == nar.num_codebooks - 1 == len(nar.audio_embeddings) - 1
    for i, head in enumerate(nar.heads):
        assert head.weight is nar.audio_embeddings[i + 1].weight
    names = {n for n, _ in nar.named_parameters()}
    assert not any(n.startswith("heads.") for n in names)  # shared, counted once


@pytest.mark.parametrize("stage_kind", ["adaln", "code_id_token"])
def test_stage_embedding_changes_output(stage_kind: str) -> None:
    model = tiny_model(overrides=[f"nar.stage={stage_kind}"]).eval()
    nar = model.nar
    batch = dummy_batch(tiny_valle_config(), batch_size=2)
    args = (
        batch["text_tokens"],
        batch["text_lens"],
        batch["prompt_codes"],
        batch["prompt_lens"],
        batch["audio_codes"],
        batch["audio_lens"],
    )
    with torch.no_grad():
        a = nar(*args, 2)
        nar.stage.embedding.weight[1] = nar.stage.embedding.weight[0]  # stage 2 looks like stage 1
        b = nar(*args, 2)
        nar.stage.embedding.weight[1] = nar.stage.embedding.weight[2]
        c = nar(*args, 2)
    assert (a - b).abs().max() > 1e-3 and (b - c).abs().max() > 1e-3
    with pytest.raises(ValueError, match="stage"):
        nar(*args, 0)


def test_padding_and_unread_codebooks_do_not_matter() -> None:
    model = tiny_model().eval()
    batch = dummy_batch(tiny_valle_config(), batch_size=2, audio_len=(5, 9), seed=4)
    args = [batch["text_tokens"], batch["text_lens"], batch["prompt_codes"], batch["prompt_lens"]]
    codes = batch["audio_codes"]
    lens = batch["audio_lens"]
    noisy = codes.clone()
    noisy[..., 2:] = torch.randint(0, 16, noisy[..., 2:].shape)  # codebooks >= stage 2 unread
    with torch.no_grad():
        a = model.nar(*args, codes, lens, 2)
        b = model.nar(*args, noisy, lens, 2)
    mask = torch.arange(codes.shape[1]) < lens[:, None]
    assert (a - b)[mask].abs().max() <= 1e-5


def test_generate_fills_codebooks_and_keeps_the_first() -> None:
    model = tiny_model().eval()
    batch = dummy_batch(tiny_valle_config(), batch_size=2, seed=2)
    first = batch["audio_codes"][..., 0]
    out = model.nar.generate(
        batch["text_tokens"],
        batch["text_lens"],
        batch["prompt_codes"],
        batch["prompt_lens"],
        first,
        batch["audio_lens"],
    )
    assert out.shape == (*first.shape, 4)
    mask = torch.arange(first.shape[1]) < batch["audio_lens"][:, None]
    assert torch.equal(out[..., 0], first * mask)
    assert (out[~mask] == 0).all()
    assert int(out.max()) < 16


def test_stage_kinds_use_their_norms() -> None:
    from valle.modules.norms import AdaptiveLayerNorm, LayerNorm

    adaln = tiny_model().nar
    token = tiny_model(overrides=["nar.stage=code_id_token"]).nar
    assert isinstance(adaln.backbone.final_norm, AdaptiveLayerNorm)
    assert isinstance(token.backbone.final_norm, LayerNorm)
    assert token.heads[0].weight is token.audio_embeddings[1].weight
