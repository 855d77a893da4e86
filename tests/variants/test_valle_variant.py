"""VALL-E wiring: stages, sampler config, vocabulary checks; tiny models overfit (the contract every
registered variant keeps is tests/variants/test_contract.py)."""

from __future__ import annotations

import pytest
import torch

from valle.registry import build_model
from valle.testing.model import batch_from_codes, dummy_batch, tiny_config, tiny_model


def test_stages_select_parts_and_errors() -> None:
    cfg = tiny_config("valle")
    model = build_model(cfg)
    batch = dummy_batch(cfg)
    _, m = model.loss(batch, stages=("ar",))
    assert set(m) == {"ar/loss", "ar/acc", "ar/top10_acc", "loss"}
    _, m = model.loss(batch, stages=("nar",))
    assert set(m) == {"nar/loss", "nar/acc", "nar/top10_acc", "loss"}
    with pytest.raises(ValueError, match="stages"):
        model.loss(batch, stages=("arr",))
    ar_only = build_model(tiny_config("valle", overrides=["nar=null"]))
    assert ar_only.nar is None
    with pytest.raises(ValueError, match="no NAR"):
        ar_only.loss(batch, stages=("nar",))
    out = ar_only.eval().generate(
        batch["text_tokens"], batch["text_lens"], batch["prompt_codes"], batch["prompt_lens"]
    )
    assert all(o.shape[1] == 1 for o in out)


def test_default_sampler_comes_from_config() -> None:
    from valle.sampling import FilteredSampler, Greedy

    assert isinstance(tiny_model().ar.default_sampler, Greedy)
    model = tiny_model(overrides=["ar.sampler.kind=sample", "ar.sampler.top_k=5"]).eval()
    assert isinstance(model.ar.default_sampler, FilteredSampler)
    batch = dummy_batch(tiny_config("valle"), batch_size=2, seed=5)
    args = (batch["text_tokens"], batch["text_lens"], batch["prompt_codes"], batch["prompt_lens"])
    runs = [model.generate(*args, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(
        a.shape == c.shape and torch.equal(a, c) for a, c in zip(runs[0], runs[2], strict=True)
    )


def test_tiny_model_overfits_two_utterances() -> None:
    """Teacher-forced accuracy reaches 1 and greedy AR + NAR reproduce the codes.

    The NAR trains with a fixed 25 % same-utterance prefix as prompt, the split used at
    inference here (prompt = the first quarter, text = the whole transcript).
    """
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    Q, V = 4, 16
    texts = [torch.randint(1, 12, (6,), generator=g), torch.randint(1, 12, (8,), generator=g)]
    codes = [torch.randint(0, V, (16, Q), generator=g), torch.randint(0, V, (20, Q), generator=g)]
    batch = batch_from_codes(texts, codes)
    model = tiny_model(
        d_model=64,
        ffn_dim=128,
        overrides=["nar.prompt.min_ratio=0.25", "nar.prompt.max_ratio=0.25"],
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def accuracies() -> list[float]:
        model.eval()
        with torch.no_grad():
            accs = [float(model.ar.loss(batch)[1]["acc"])]
            accs += [float(model.nar.loss(batch, stage=s)[1]["acc"]) for s in range(1, Q)]
        model.train()
        return accs

    for step in range(400):
        loss, _ = model.loss(batch, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 24 and min(accuracies()) >= 0.99:
            break
    accs = accuracies()
    assert min(accs) >= 0.99, accs

    model.eval()
    prompt_lens = [4, 5]  # round(0.25 * T)
    prompts = [c[:p] for c, p in zip(codes, prompt_lens, strict=True)]
    pb = batch_from_codes(texts, codes, prompts)
    out = model.generate(pb["text_tokens"], pb["text_lens"], pb["prompt_codes"], pb["prompt_lens"])
    for o, c, p in zip(out, codes, prompt_lens, strict=True):
        assert torch.equal(o, c[p:])


def test_batch_that_does_not_fit_the_vocabulary_is_a_clear_error() -> None:
    cfg = tiny_config("valle")
    model = build_model(cfg)
    batch = dummy_batch(cfg)
    bad = dict(batch, audio_codes=batch["audio_codes"] + cfg.vocab.codebook_size)
    with pytest.raises(ValueError, match="audio_codes.*vocabulary facts"):
        model.loss(bad)
    bad = dict(batch, text_tokens=batch["text_tokens"] + 100)
    with pytest.raises(ValueError, match="text_tokens"):
        model.loss(bad)
    bad = dict(batch, audio_codes=batch["audio_codes"][..., :2])
    with pytest.raises(ValueError, match="codebooks"):
        model.loss(bad)


def test_tiny_grouped_ar_overfits_and_continues_at_the_prompt_seam() -> None:
    """VALL-E 2 grouping (G = 2): a tiny AR overfits two utterances of odd and even length
    and, from prompts of 5 and 4 frames, greedy generation returns exactly the frames after
    the prompt. The old layout padded the last group in training and dropped the prompt's
    last P mod G frames at inference, so the 5-frame prompt's continuation started at frame 4
    (a frame repeated at the seam)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    Q, V = 4, 16
    # a prompt's groups start where the utterance's do when T = P (mod G)
    lengths, prompt_lens = [17, 20], [5, 4]
    texts = [torch.randint(1, 12, (6,), generator=g), torch.randint(1, 12, (8,), generator=g)]
    codes = [torch.randint(0, V, (n, Q), generator=g) for n in lengths]
    batch = batch_from_codes(texts, codes)
    model = tiny_model(
        d_model=64,
        ffn_dim=128,
        overrides=["nar=null", "ar.layout.kind=grouped", "ar.layout.group=2"],
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(400):
        loss, metrics = model.loss(batch, stages=("ar",))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 24 and float(metrics["ar/acc"]) >= 0.999:
            break
    model.eval()
    with torch.no_grad():
        assert float(model.ar.loss(batch)[1]["acc"]) >= 0.99
    prompts = [c[:p] for c, p in zip(codes, prompt_lens, strict=True)]
    pb = batch_from_codes(texts, codes, prompts)
    out = model.generate(pb["text_tokens"], pb["text_lens"], pb["prompt_codes"], pb["prompt_lens"])
    for o, c, p in zip(out, codes, prompt_lens, strict=True):
        assert torch.equal(o[:, 0], c[p:, 0])
