"""AR decoder: loss and gradients, KV-cache decoding, batched generation, length bound."""

from __future__ import annotations

import math

import pytest
import torch

from valle.ar.generate import generate_ar, max_new_steps
from valle.testing.model import dummy_batch, tiny_model, tiny_valle_config

LAYOUTS = [[], ["ar.layout.kind=grouped", "ar.layout.group=2"]]


def _pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(r) for r in rows])
    out = torch.zeros(len(rows), int(lens.max()), *rows[0].shape[1:], dtype=rows[0].dtype)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
    return out, lens


@pytest.mark.parametrize("layout", LAYOUTS, ids=["first_codebook", "grouped2"])
def test_loss_finite_and_every_parameter_gets_a_gradient(layout: list[str]) -> None:
    model = tiny_model(dropout=0.1, overrides=layout)
    batch = dummy_batch(tiny_valle_config(), batch_size=3)
    loss, metrics = model.ar.loss(batch)
    assert torch.isfinite(loss)
    assert set(metrics) == {"loss", "acc", "top10_acc"}
    loss.backward()
    for name, p in model.ar.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"
    assert all(p.grad is None for p in model.nar.parameters())


def test_loss_targets_end_with_eos_and_ignore_padding() -> None:
    model = tiny_model()
    batch = dummy_batch(tiny_valle_config(), batch_size=2, audio_len=(4, 9), seed=3)
    loss, _ = model.ar.loss(batch)
    # padding frames must not matter
    batch2 = dict(batch)
    codes = batch["audio_codes"].clone()
    for b, n in enumerate(batch["audio_lens"].tolist()):
        codes[b, n:] = 7
    batch2["audio_codes"] = codes
    loss2, _ = model.ar.loss(batch2)
    torch.testing.assert_close(loss, loss2)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["first_codebook", "grouped2"])
def test_kv_cache_logits_equal_full_recomputation_over_50_steps(layout: list[str]) -> None:
    model = tiny_model(seed=1, overrides=layout).eval()
    ar = model.ar
    E = ar.layout.step_shape
    g = torch.Generator().manual_seed(0)
    text = [torch.randint(1, 12, (n,), generator=g) for n in (7, 4, 9)]
    prompt = [torch.randint(0, 16, (n, 4), generator=g) for n in (3, 6, 1)]
    future = torch.randint(0, 16, (3, 50, *E), generator=g)  # (B, 50, *E) fed step by step
    text_tokens, text_lens = _pad(text)
    prompt_codes, prompt_lens = _pad(prompt)
    with torch.no_grad():
        # incremental
        steps, step_lens, _ = ar.layout.to_steps(prompt_codes, prompt_lens)
        audio_in, in_lens = ar.layout.with_bos(steps, step_lens)
        logits, cache = ar.prefill(text_tokens, text_lens, audio_in, in_lens)
        inc = [logits]
        index = in_lens.clone()
        for n in range(50):
            pos = ar.audio_positions(torch.ones_like(index), 1, index)
            inc.append(ar.step(future[:, n], pos, cache))
            index = index + 1
        # full recomputation, per row [BOS, prompt steps, future]
        rows = [torch.cat([audio_in[b, : int(in_lens[b])], future[b]]) for b in range(3)]
        full_in, full_lens = _pad(rows)
        full = ar(text_tokens, text_lens, full_in, full_lens)  # (B, N, *E, V)
    worst = 0.0
    for b in range(3):
        for n, step_logits in enumerate(inc):
            ref = full[b, int(in_lens[b]) - 1 + n]
            worst = max(worst, float((step_logits[b] - ref).abs().max()))
    assert worst <= 1e-4, worst


def _eos_when(code: int, eos: int):
    """Greedy sampler that emits EOS whenever the arg-max is ``code`` (data-dependent stops)."""

    def sampler(logits, history, generator):
        ids = logits.argmax(-1)
        return torch.where(ids == code, torch.full_like(ids, eos), ids)

    return sampler


@pytest.mark.parametrize("layout", LAYOUTS, ids=["first_codebook", "grouped2"])
def test_batched_generation_equals_per_item(layout: list[str]) -> None:
    model = tiny_model(seed=2, overrides=layout).eval()
    ar = model.ar
    g = torch.Generator().manual_seed(5)
    text = [torch.randint(1, 12, (n,), generator=g) for n in (3, 8, 5, 6)]
    prompt = [torch.randint(0, 16, (n, 4), generator=g) for n in (2, 5, 0, 3)]
    for sampler in (
        lambda logits, history, gen: logits.argmax(-1),
        _eos_when(int(torch.randint(0, 16, (1,), generator=g)), ar.eos_id),
    ):
        text_tokens, text_lens = _pad(text)
        prompt_codes, prompt_lens = _pad(prompt)
        batched = generate_ar(
            ar, text_tokens, text_lens, prompt_codes, prompt_lens, sampler=sampler
        )
        for b in range(4):
            single = generate_ar(
                ar,
                text[b][None],
                text_lens[b : b + 1],
                prompt[b][None],
                prompt_lens[b : b + 1],
                sampler=sampler,
            )[0]
            assert torch.equal(batched[b], single), b
    assert len({len(x) for x in batched}) > 1 or all(len(x) == 0 for x in batched)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["first_codebook", "grouped2"])
def test_length_bound_holds_when_eos_never_comes(layout: list[str]) -> None:
    model = tiny_model(seed=3, max_len_ratio=2.5, overrides=layout).eval()
    ar = model.ar
    G = ar.layout.frames_per_step

    def never_eos(logits, history, generator):
        logits = logits.clone()
        logits[:, ar.eos_id] = -math.inf
        return logits.argmax(-1)

    text_tokens = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    text_lens = torch.tensor([3, 5])
    prompt = torch.randint(0, 16, (2, 2, 4))
    out = generate_ar(ar, text_tokens, text_lens, prompt, torch.tensor([2, 1]), sampler=never_eos)
    assert [len(o) for o in out] == [math.ceil(math.ceil(2.5 * n) / G) for n in (3, 5)]
    assert all(int(o.max()) < 16 for o in out)
    out = generate_ar(
        ar,
        text_tokens,
        text_lens,
        prompt,
        torch.tensor([2, 1]),
        sampler=never_eos,
        max_len_ratio=1.0,
    )
    assert [len(o) for o in out] == [math.ceil(n / G) for n in (3, 5)]
    assert max_new_steps(torch.tensor([0, 1]), 0.1).tolist() == [1, 1]


def test_immediate_eos_gives_empty_output() -> None:
    model = tiny_model().eval()
    ar = model.ar

    def always_eos(logits, history, g):
        return torch.full_like(logits[:, 0], ar.eos_id, dtype=torch.long)

    out = generate_ar(
        ar,
        torch.tensor([[1, 2]]),
        torch.tensor([2]),
        torch.zeros(1, 0, 4, dtype=torch.long),
        torch.tensor([0]),
        sampler=always_eos,
    )
    assert out[0].shape == (0,)


def test_sampler_sees_history_and_generator() -> None:
    model = tiny_model().eval()
    seen = []

    def recording(logits, history, generator):
        seen.append((history.clone(), generator))
        return torch.randint(0, 16, (logits.shape[0],), generator=generator)

    gen = torch.Generator().manual_seed(0)
    out = generate_ar(
        model.ar,
        torch.tensor([[1, 2]]),
        torch.tensor([2]),
        torch.zeros(1, 1, 4, dtype=torch.long),
        torch.tensor([1]),
        sampler=recording,
        generator=gen,
        max_len_ratio=3,
    )
    # the history starts with the prompt's codes (VALL-E 2 Algorithm 1 continues them)
    assert [h.shape[1] for h, _ in seen] == list(range(1, 7))
    assert torch.equal(seen[-1][0][0], torch.cat([torch.zeros(1, dtype=torch.long), out[0][:5]]))
    assert seen[0][1] is gen
