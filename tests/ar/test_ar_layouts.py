"""Acoustic layouts: steps end at the last frame, round-trip, BOS/EOS targets (property tests);
VALL-E 2's grouping trims at the start, in training and at the prompt/continuation seam."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from valle.ar.generate import generate_ar
from valle.ar.layouts import FirstCodebookLayout, GroupedCodeLayout
from valle.testing.model import batch_from_codes, tiny_model

V = 50
GROUPED = ["ar.layout.kind=grouped", "ar.layout.group=2"]


@settings(max_examples=40, deadline=None)
@given(
    lens=st.lists(st.integers(0, 9), min_size=1, max_size=4),
    group=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_layouts_round_trip(lens: list[int], group: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    T = max(lens)
    codes = torch.randint(0, V, (len(lens), T, 3), generator=g)
    lens_t = torch.tensor(lens)
    for layout in (FirstCodebookLayout(V), GroupedCodeLayout(V, group)):
        G = layout.frames_per_step
        steps, step_lens, valid = layout.to_steps(codes, lens_t)
        assert steps.shape[2:] == layout.step_shape
        assert step_lens.tolist() == [n // G for n in lens]
        tf = layout.teacher_forcing(codes, lens_t)
        for b, n in enumerate(lens):
            k = n // G
            # whole steps ending at the last frame: the first n mod G frames are left out
            frames = layout.from_steps(steps[b, :k])
            assert frames.shape == (k * G, 1)
            assert torch.equal(frames[:, 0], codes[b, n - k * G : n, 0])
            # teacher forcing: [BOS, s_1..s_k] -> [s_1..s_k, EOS], every scored element real
            assert int(tf.lens[b]) == k + 1
            assert (tf.inputs[b, 0] == layout.bos_id).all()
            assert torch.equal(tf.inputs[b, 1 : k + 1], steps[b, :k])
            assert torch.equal(tf.targets[b, :k], steps[b, :k])
            assert (tf.targets[b, k] == layout.eos_id).all()
            width = max(1, len(layout.step_shape) and layout.step_shape[0])
            assert int(tf.mask[b].sum()) == (k + 1) * width
            assert tf.mask[b, : k + 1].all()
            assert valid[b, :k].all() and not valid[b, k:].any()


def test_group_embedding_shape() -> None:
    emb = GroupedCodeLayout(10, 4).embedding(32)
    assert emb(torch.zeros(2, 5, 4, dtype=torch.long)).shape == (2, 5, 32)


def test_grouped_training_trims_at_the_start_not_pads_at_the_end() -> None:
    """VALL-E 2 Sec 3.1: drop the first T mod G frames so every group is whole.

    Old code padded the last partial group (an untrained tail) and used the first frames:
    the AR loss then depended on frame 0 of a 9-frame utterance.
    """
    model = tiny_model(seed=0, overrides=GROUPED)
    g = torch.Generator().manual_seed(0)
    texts = [torch.randint(1, 12, (5,), generator=g)]
    codes = torch.randint(0, 16, (9, 4), generator=g)  # T = 9, G = 2: frame 0 is dropped
    other = codes.clone()
    other[0, 0] = (codes[0, 0] + 1) % 16
    last = codes.clone()
    last[-1, 0] = (codes[-1, 0] + 1) % 16
    with torch.no_grad():
        base = model.ar.loss(batch_from_codes(texts, [codes]))[0]
        first_changed = model.ar.loss(batch_from_codes(texts, [other]))[0]
        last_changed = model.ar.loss(batch_from_codes(texts, [last]))[0]
    assert torch.equal(base, first_changed)
    assert not torch.equal(base, last_changed)  # the last frame is trained


def test_grouped_prompt_seam_neither_loses_nor_repeats_a_frame() -> None:
    """The AR's prompt steps end at the prompt's last frame, so its continuation starts at
    frame P, where the NAR places it (issue 7: the AR dropped the last P mod G frames)."""
    model = tiny_model(seed=1, overrides=GROUPED).eval()
    ar = model.ar
    seen = {}
    prefill = ar.prefill

    def recording_prefill(text_tokens, text_lens, audio_in, audio_lens, *args, **kwargs):
        seen["audio_in"], seen["lens"] = audio_in.clone(), audio_lens.clone()
        return prefill(text_tokens, text_lens, audio_in, audio_lens, *args, **kwargs)

    ar.prefill = recording_prefill
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, 16, (p, 4), generator=g) for p in (5, 4, 1)]
    texts = [torch.randint(1, 12, (6,), generator=g) for _ in prompts]
    b = batch_from_codes(texts, prompts, prompts)
    generate_ar(ar, b["text_tokens"], b["text_lens"], b["prompt_codes"], b["prompt_lens"])
    for row, p in enumerate(prompts):
        n = int(seen["lens"][row]) - 1  # prompt steps after BOS
        fed = ar.layout.from_steps(seen["audio_in"][row, 1 : n + 1])[:, 0]
        assert n == len(p) // 2
        assert torch.equal(fed, p[len(p) - 2 * n :, 0]), row  # the prompt's LAST frames
