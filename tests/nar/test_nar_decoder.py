"""NAR decoder: loss and gradients, tied heads, AdaLN stage, generation."""

from __future__ import annotations

import pytest
import torch

from valle.data.batch import SynthesisInputs
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
    inputs = SynthesisInputs(
        batch["text_tokens"], batch["text_lens"], batch["prompt_codes"], batch["prompt_lens"]
    )
    out = model.nar.generate(inputs, first, batch["audio_lens"])
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


def _spy_text(nar) -> list[torch.Tensor]:
    """Record the text rows (trimmed) that every NAR forward reads."""
    seen: list[torch.Tensor] = []
    original = nar.forward

    def spy(text, text_lens, *args, **kwargs):
        seen.append([text[b, : int(n)].clone() for b, n in enumerate(text_lens)])
        return original(text, text_lens, *args, **kwargs)

    nar.forward = spy
    return seen


@pytest.mark.parametrize(
    "kind, reads_prompt_text",
    [
        ("same_utterance_prefix", True),
        ("other_utterance", False),
        ("random_segment", False),
        ("none", False),
    ],
)
def test_generate_gives_the_nar_the_text_its_policy_trained_on(kind, reads_prompt_text) -> None:
    """The NAR reads the prompt transcript at inference only if its training text held it.

    Under other_utterance / random_segment / none the training text is the target's alone;
    the old generate always gave the NAR prompt transcript + target text.
    """
    model = tiny_model(prompt=kind).eval()
    seen = _spy_text(model.nar)
    g = torch.Generator().manual_seed(0)
    prompt_text = [torch.randint(1, 12, (n,), generator=g) for n in (3, 5)]
    target_text = [torch.randint(1, 12, (n,), generator=g) for n in (4, 2)]
    prompts = [torch.randint(0, 16, (n, 4), generator=g) for n in (3, 6)]
    texts = [torch.cat([p, t]) for p, t in zip(prompt_text, target_text, strict=True)]
    inputs = SynthesisInputs.from_rows(texts, prompts, prompt_text_lens=[3, 5])
    model.generate(
        inputs.text_tokens,
        inputs.text_lens,
        inputs.prompt_codes,
        inputs.prompt_lens,
        prompt_text_lens=inputs.prompt_text_lens,
        max_len_ratio=2.0,
    )
    expected = texts if reads_prompt_text else target_text
    assert seen, "the NAR never ran"
    for rows in seen:
        assert all(torch.equal(a, b) for a, b in zip(rows, expected, strict=True))


def test_target_text_policy_without_the_prompt_boundary_is_a_clear_error() -> None:
    model = tiny_model(prompt="other_utterance").eval()
    batch = dummy_batch(tiny_valle_config(), batch_size=2, seed=2)
    inputs = SynthesisInputs(
        batch["text_tokens"], batch["text_lens"], batch["prompt_codes"], batch["prompt_lens"]
    )
    with pytest.raises(ValueError, match="prompt_text_lens"):
        model.nar.generate(inputs, batch["audio_codes"][..., 0], batch["audio_lens"])


def test_no_prompt_policy_generates_without_the_acoustic_prompt() -> None:
    model = tiny_model(prompt="none").eval()
    batch = dummy_batch(tiny_valle_config(), batch_size=2, seed=2)
    inputs = SynthesisInputs(
        batch["text_tokens"],
        batch["text_lens"],
        batch["prompt_codes"],
        batch["prompt_lens"],
        prompt_text_lens=torch.zeros(2, dtype=torch.long),
    )
    first, lens = batch["audio_codes"][..., 0], batch["audio_lens"]
    a = model.nar.generate(inputs, first, lens)
    b = model.nar.generate(inputs.without_prompt(), first, lens)
    assert torch.equal(a, b)


def test_synthesizer_gives_a_target_text_nar_the_target_text() -> None:
    """End to end: a model whose NAR trained on the target text alone (other_utterance) reads
    only the target's phonemes at synthesis, the prompt transcript is for the AR."""
    from valle.inference import Synthesizer
    from valle.testing.codec import tiny_encodec_codec
    from valle.text import SymbolTable, tokenize_text

    text, prompt_text = "lazy dog", "quick fox"
    symbols = SymbolTable.build([tokenize_text(text, "en"), tokenize_text(prompt_text, "en")])
    codec = tiny_encodec_codec(num_codebooks=4, codebook_size=16)
    model = tiny_model(prompt="other_utterance", text_vocab_size=len(symbols))
    seen = _spy_text(model.nar)
    synth = Synthesizer(model, symbols, codec, max_len_ratio=1.0)
    prompt_wav = torch.sin(torch.arange(codec.sample_rate) / 20.0) * 0.3  # 1 s
    synth.synthesize(text, prompt_wav.numpy(), prompt_text, prompt_sample_rate=codec.sample_rate)
    target_ids = symbols.encode(tokenize_text(text, "en"))
    assert seen and all(r[0].tolist() == target_ids for r in seen)


@pytest.mark.parametrize(
    "kind", ["none", "same_utterance_prefix", "random_segment", "other_utterance"]
)
def test_every_prompt_policy_trains(kind: str) -> None:
    model = tiny_model(prompt=kind)
    batch = dummy_batch(tiny_valle_config(), batch_size=3, audio_len=(6, 12))
    loss, metrics = model.nar.loss(batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and 0.0 <= float(metrics["acc"]) <= 1.0
    loss.backward()
    assert model.nar.text_embedding.weight.grad is not None
