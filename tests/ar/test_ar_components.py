"""The AR's components: tied head, code history, pluggable stop policy, aligned positions."""

from __future__ import annotations

import math

import pytest
import torch

from valle.ar.generate import generate_ar
from valle.ar.masks import PrefixLMMask
from valle.modules.positions import AUDIO, NO_ALIGN, PROSODY, TEXT, SegmentPositions
from valle.sampling import FilteredSampler, RepetitionAwareSampler, TopK
from valle.testing.model import batch_from_codes, tiny_model


def _args(texts, prompts):
    b = batch_from_codes(texts, prompts, prompts)
    return b["text_tokens"], b["text_lens"], b["prompt_codes"], b["prompt_lens"]


@pytest.mark.parametrize("layout", [[], ["ar.layout.kind=grouped", "ar.layout.group=2"]])
def test_tied_head_shares_the_acoustic_embedding(layout: list[str]) -> None:
    model = tiny_model(overrides=layout)
    ar = model.ar
    assert ar.head.tied and not any(n.startswith("head.proj") for n, _ in ar.named_parameters())
    h = torch.randn(3, 32)
    before = ar.head(h)
    with torch.no_grad():
        table = ar.audio_embedding.weight
        table[: ar.layout.num_classes] += 1.0  # a class row changes the logits ...
    assert not torch.allclose(ar.head(h), before)
    with torch.no_grad():
        table[: ar.layout.num_classes] -= 1.0
        table[ar.layout.bos_id] += 1.0  # ... the BOS row (an input only) does not
    torch.testing.assert_close(ar.head(h), before)
    untied = tiny_model(overrides=layout + ["ar.head.tie_embedding=false"]).ar
    assert not untied.head.tied and untied.head.proj is not None


def test_history_holds_each_rows_prompt_right_aligned() -> None:
    """VALL-E 2 Algorithm 1 counts repeats in the code sequence being continued, prompt
    included; rows with shorter prompts are padded with -1 on the left."""
    model = tiny_model(seed=3).eval()
    seen = []

    def recording(logits, history, generator):
        seen.append(history.clone())
        return logits.argmax(-1)

    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 16, (n, 4), generator=g) for n in (3, 1)]
    texts = [torch.randint(1, 12, (4,), generator=g) for _ in prompts]
    out = generate_ar(model.ar, *_args(texts, prompts), sampler=recording, max_len_ratio=1.0)
    first = seen[0]
    assert first.tolist() == [prompts[0][:, 0].tolist(), [-1, -1, prompts[1][0, 0].item()]]
    for b in range(2):  # later steps append the codes drawn
        n = len(out[b])
        assert torch.equal(seen[n - 1][b, 3:], out[b][: n - 1]) if n else True


def test_repetition_aware_sampling_counts_the_prompt() -> None:
    """A prompt ending in code 7 three times and a nucleus that proposes 7: RAS (K=4,
    t_r=0.5) must fall back at the very first step (3 of the last 4 codes are 7). With the
    history starting empty (the old loop) it kept the 7."""

    def propose_7(logits, history, generator):
        return torch.full_like(logits[:, 0], 7, dtype=torch.long)

    def fallback_15(logits, history, generator):
        return torch.full_like(logits[:, 0], 15, dtype=torch.long)

    ras = RepetitionAwareSampler(nucleus=propose_7, fallback=fallback_15, window=4, threshold=0.5)
    model = tiny_model(seed=5).eval()
    prompt = torch.tensor([3, 7, 7, 7])[:, None].expand(4, 4)
    out = generate_ar(
        model.ar, *_args([torch.tensor([1, 2, 3])], [prompt]), sampler=ras, max_len_ratio=1.0
    )
    assert out[0][0].item() == 15


class _StopAfter:
    """A stop policy reading a per-row condition: end row b after ``stop_at[b]`` steps,
    keeping the step that ends it (as MELLE's stop flag does)."""

    keeps_last = True

    def begin(self, context):
        return context.conditions["stop_at"]

    def prepare(self, out, n, state):
        return out

    def __call__(self, step, out, n, state):
        return state == n + 1


def test_a_stop_policy_is_a_component() -> None:
    model = tiny_model(seed=2).eval()
    ar = model.ar
    ar.stop = _StopAfter()
    prompts = [torch.zeros(2, 4).long(), torch.zeros(3, 4).long()]
    texts = [torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])]

    def never_eos(logits, history, generator):
        logits = logits.clone()
        logits[:, ar.layout.eos_id] = -math.inf
        return logits.argmax(-1)

    out = generate_ar(
        ar, *_args(texts, prompts), sampler=never_eos,
        conditions={"stop_at": torch.tensor([2, 5])},
    )  # fmt: skip
    assert [len(o) for o in out] == [2, 5]


class _AlignedMask:
    """A toy duration-guided mask: audio sees earlier audio and only text within 1 of its
    aligned phoneme (RALL-E's idea, k = 1), through ``query.align``."""

    def __call__(self, query: SegmentPositions, key: SegmentPositions) -> torch.Tensor:
        base = PrefixLMMask()(query, key)
        q_audio = (query.segment == AUDIO)[:, :, None]
        k_text = (key.segment == TEXT)[:, None, :]
        near = (key.index[:, None, :] - query.aligned()[:, :, None]).abs() <= 1
        return base & ~(q_audio & k_text & ~near)


def test_aligned_positions_reach_the_mask_and_the_cache_agrees_with_recomputation() -> None:
    model = tiny_model(seed=6).eval()
    ar = model.ar
    ar.mask = _AlignedMask()
    g = torch.Generator().manual_seed(1)
    text = torch.randint(1, 12, (2, 6), generator=g)
    text_lens = torch.tensor([6, 4])
    audio = torch.randint(0, 16, (2, 8), generator=g)
    lens = torch.tensor([8, 8])
    align = torch.tensor([[0, 0, 1, 2, 2, 3, 4, 5], [0, 1, 1, 2, 3, 3, 3, 3]])
    with torch.no_grad():
        pos = ar.audio_positions(lens, 8, align=align)
        full = ar(text, text_lens, audio, lens, audio_pos=pos)  # (B, 8, V)
        blind = ar(text, text_lens, audio, lens)  # no alignment: all text is too far
        assert not torch.allclose(full, blind)
        out, cache = ar.prefill(text, text_lens, audio[:, :3], torch.tensor([3, 3]),
                                audio_pos=ar.audio_positions(torch.tensor([3, 3]), 3,
                                                             align=align[:, :3]))  # fmt: skip
        steps = [out]
        for n in range(3, 8):
            p = ar.audio_positions(
                torch.ones(2).long(), 1, torch.full((2,), n), align[:, n : n + 1]
            )
            steps.append(ar.step(audio[:, n], p, cache))
    for i, s in enumerate(steps):
        torch.testing.assert_close(s, full[:, 2 + i], atol=1e-4, rtol=0)


def test_positions_carry_alignment_and_segments() -> None:
    text = SegmentPositions.span(TEXT, torch.tensor([2]), 2)
    prosody = SegmentPositions.span(PROSODY, torch.tensor([2]), 2)
    audio = SegmentPositions.span(AUDIO, torch.tensor([3]), 3, align=torch.tensor([[0, 1, 1]]))
    both = text.cat(prosody).cat(audio)
    assert both.segment.tolist() == [[TEXT] * 2 + [PROSODY] * 2 + [AUDIO] * 3]
    assert both.aligned().tolist() == [[NO_ALIGN] * 4 + [0, 1, 1]]
    assert text.align is None and text.cat(text).align is None
    with pytest.raises(ValueError, match="align"):
        SegmentPositions.span(AUDIO, torch.tensor([3]), 3, align=torch.zeros(1, 2).long())


def test_nan_logits_are_a_clear_error_checked_once_per_call() -> None:
    model = tiny_model(seed=1).eval()
    ar = model.ar
    with torch.no_grad():
        ar.head.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        generate_ar(ar, *_args([torch.tensor([1, 2])], [torch.zeros(1, 4).long()]))


@pytest.mark.parametrize("group", [1, 2])
def test_duration_stop_ends_at_the_sum_of_durations_and_ignores_early_eos(group: int) -> None:
    layout = [] if group == 1 else ["ar.layout.kind=grouped", "ar.layout.group=2"]
    model = tiny_model(seed=4, overrides=layout + ["ar.stop.kind=duration"]).eval()
    ar = model.ar

    def eos_first(logits, history, generator):  # takes EOS whenever it may
        return logits.argmax(-1).where(torch.isinf(logits[:, ar.layout.eos_id]), ar.layout.eos_id)

    prompts = [torch.zeros(2, 4).long(), torch.zeros(1, 4).long()]
    texts = [torch.tensor([1, 2, 3]), torch.tensor([4, 5, 0])]
    durations = torch.tensor([[2, 3, 2], [1, 2, 0]])  # D = 7 and 3 frames
    out = generate_ar(ar, *_args(texts, prompts), sampler=eos_first,
                      conditions={"durations": durations})  # fmt: skip
    assert [len(o) for o in out] == [-(-7 // group), -(-3 // group)]
    assert all(int(o.max()) < 16 for o in out)  # no EOS inside
    with pytest.raises(ValueError, match="durations"):
        generate_ar(ar, *_args(texts, prompts))


def test_generation_reads_one_value_per_step_back_to_the_host(monkeypatch) -> None:
    """Host reads (a device sync on an accelerator) in generate_ar: a few per call and one per
    step (has every row ended?), whatever the step width; the old loop added two per element
    per step in the sampler's logits check."""
    from torch import nn

    from valle.modules.embedding import TokenEmbedding

    # the embedding's id check reads ids on CPU only (skipped on accelerators): leave it out
    monkeypatch.setattr(TokenEmbedding, "forward", nn.Embedding.forward)
    reads = {"n": 0}
    for name in ("__bool__", "__int__", "__float__", "item", "tolist"):
        original = getattr(torch.Tensor, name)

        def counting(self, *a, _original=original, **k):
            reads["n"] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counting)

    def no_eos(logits):
        return logits.index_fill(-1, torch.tensor([16]), float("-inf"))

    never_eos = FilteredSampler([no_eos, TopK(1)])  # a library sampler, as decoding uses

    for layout in ([], ["ar.layout.kind=grouped", "ar.layout.group=2"]):
        ar = tiny_model(seed=1, overrides=layout).eval().ar
        args = _args(
            [torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6])], [torch.zeros(2, 4).long()] * 2
        )
        counts = []
        for ratio in (2.0, 4.0):
            reads["n"] = 0
            out = generate_ar(ar, *args, sampler=never_eos, max_len_ratio=ratio)
            counts.append((reads["n"], max(len(o) for o in out)))
        (r1, n1), (r2, n2) = counts
        assert n2 > n1 and (r2 - r1) == (n2 - n1), counts  # one read per extra step
