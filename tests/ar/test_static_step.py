"""StaticARStep: the fixed-shape step computes what the KV-cached step computes, with stable
buffers and the same ops and shapes at every step (what a CUDA graph needs)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from valle.ar.static_step import StaticARStep
from valle.testing.model import tiny_model

LAYOUTS = [[], ["ar.layout.kind=grouped", "ar.layout.group=2"]]
IDS = ["first_codebook", "grouped2"]
STEPS = 20


def _inputs(ar: Any, seed: int, text_lens: list[int], prompt_lens: list[int], steps: int):
    """Right-padded text (B, S), a prompt (B, P, 4), the AR's audio input and lengths, and
    ``steps`` future steps (B, steps, *E) to feed (teacher forcing)."""
    g = torch.Generator().manual_seed(seed)
    B = len(text_lens)
    text = torch.randint(1, 12, (B, max(text_lens)), generator=g)
    prompt = torch.randint(0, 16, (B, max(prompt_lens), 4), generator=g)
    tl, pl = torch.tensor(text_lens), torch.tensor(prompt_lens)
    p_steps, p_lens, _ = ar.layout.to_steps(prompt, pl)
    audio_in, in_lens = ar.layout.with_bos(p_steps, p_lens)  # (B, P' + 1, *E)
    future = torch.randint(0, 16, (B, steps, *ar.layout.step_shape), generator=g)
    return text, tl, audio_in, in_lens, future


def _cached(ar: Any, text, tl, audio_in, in_lens, future) -> list[torch.Tensor]:
    """Today's path: the decoding's prefill, then its ``step`` on the growing KV cache, per
    fed step."""
    ar = ar.decoding(text)  # the AR itself, or VALL-E X's language-tagging decoding
    out, cache = ar.prefill(text, tl, audio_in, in_lens)
    outs = [out]
    index = in_lens.clone()
    for n in range(future.shape[1]):
        pos = ar.audio_positions(torch.ones_like(index), 1, index)
        outs.append(ar.step(future[:, n], pos, cache))
        index = index + 1
    return outs


def _static(st: StaticARStep, text, tl, audio_in, in_lens, future) -> list[torch.Tensor]:
    outs = [st.prefill(text, tl, audio_in, in_lens).clone()]
    for n in range(future.shape[1]):
        st.step_in.copy_(future[:, n])
        outs.append(st.step().clone())
    return outs


def _worst(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    assert len(a) == len(b)
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("variant", "layout"),
    [("valle", LAYOUTS[0]), ("valle", LAYOUTS[1]), ("valle2", []), ("vallex", [])],
    ids=["valle", "valle_grouped2", "valle2", "vallex"],
)
def test_static_step_logits_equal_the_kv_cached_step(variant: str, layout: list[str]) -> None:
    ar = tiny_model(seed=1, variant=variant, overrides=layout).eval().ar
    # batch 2, different text and prompt lengths (padding columns in both segments)
    text, tl, audio_in, in_lens, future = _inputs(ar, 0, [9, 4], [3, 7], STEPS)
    C = text.shape[1] + audio_in.shape[1] + STEPS
    with torch.no_grad():
        ref = _cached(ar, text, tl, audio_in, in_lens, future)
        st = StaticARStep(ar.decoding(text), batch=2, capacity=C)
        got = _static(st, text, tl, audio_in, in_lens, future)
    assert got[0].shape == (2, *ar.layout.step_shape, ar.layout.num_classes)
    assert _worst(ref, got) <= 1e-5
    assert len(st.cache) == C and int(st.cache.cursor) == C


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_a_second_utterance_reuses_the_buffers_and_ignores_stale_slots(layout: list[str]) -> None:
    """After a long utterance, a shorter one refills the same buffers; the slots past its
    cursor still hold the first one's keys and must stay masked."""
    ar = tiny_model(seed=2, overrides=layout).eval().ar
    long = _inputs(ar, 1, [10, 8], [8, 6], 12)
    short = _inputs(ar, 2, [3, 5], [2, 4], 6)
    C = long[0].shape[1] + long[2].shape[1] + 12
    with torch.no_grad():
        st = StaticARStep(ar.decoding(long[0]), batch=2, capacity=C)
        _static(st, *long)
        before = [(t.data_ptr(), t.shape, t.dtype) for t in st.buffers()]
        got = _static(st, *short)
        ref = _cached(ar, *short)
    assert [(t.data_ptr(), t.shape, t.dtype) for t in st.buffers()] == before
    assert _worst(ref, got) <= 1e-5


class _OpTrace(TorchFunctionMode):
    """Every torch function called, with the shapes of its tensor arguments and results."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, tuple]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        leaves = [*args, *(kwargs or {}).values(), out]
        shapes = tuple(tuple(x.shape) for x in leaves if isinstance(x, torch.Tensor))
        self.ops.append((getattr(func, "__name__", str(func)), shapes))
        return out


def test_every_step_runs_the_same_ops_on_the_same_shapes_and_addresses() -> None:
    """What a CUDA graph replays: step 1 and step 15 (and the steps of a second utterance)
    must be the same ops over the same shapes, writing the same buffers."""
    ar = tiny_model(seed=3).eval().ar
    text, tl, audio_in, in_lens, future = _inputs(ar, 3, [6, 9], [5, 2], 16)
    C = text.shape[1] + audio_in.shape[1] + 16
    traces = []
    with torch.no_grad():
        st = StaticARStep(ar.decoding(text), batch=2, capacity=C)
        st.prefill(text, tl, audio_in, in_lens)
        ptrs = [t.data_ptr() for t in st.buffers()]
        for n in range(16):
            st.step_in.copy_(future[:, n])
            if n in (1, 15):
                with _OpTrace() as trace:
                    st.step()
                traces.append(trace.ops)
            else:
                st.step()
        assert [t.data_ptr() for t in st.buffers()] == ptrs
    assert traces[0] and traces[0] == traces[1]
    # the attention reads all C slots at every step, the query being the one new position
    attn = ar.backbone.layers[0].attn
    q, k = (2, attn.num_heads, 1, attn.head_dim), (2, attn.num_heads, C, attn.head_dim)
    sdpa = [s[:2] for op, s in traces[0] if "scaled_dot_product" in op]
    assert sdpa and all(s == (q, k) for s in sdpa), sdpa


def test_full_capacity_and_wrong_batch_are_refused() -> None:
    ar = tiny_model(seed=0).eval().ar
    text, tl, audio_in, in_lens, future = _inputs(ar, 4, [4, 3], [2, 2], 2)
    C = text.shape[1] + audio_in.shape[1] + 1
    st = StaticARStep(ar.decoding(text), batch=2, capacity=C)
    with pytest.raises(ValueError, match="prefill"):
        st.step()
    st.prefill(text, tl, audio_in, in_lens)
    st.step()
    with pytest.raises(ValueError, match="full"):
        st.step()
    with pytest.raises(ValueError, match="batch"):
        st.prefill(text[:1], tl[:1], audio_in[:1], in_lens[:1])
    with pytest.raises(ValueError, match="capacity"):
        StaticARStep(ar.decoding(text), batch=2, capacity=C - 3).prefill(
            text, tl, audio_in, in_lens
        )
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            st.capture()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_captured_graph_replays_the_kv_cached_step_on_cuda(layout: list[str]) -> None:
    ar = tiny_model(seed=1, overrides=layout).eval().ar.cuda()
    inputs = [t.cuda() for t in _inputs(ar, 0, [9, 4], [3, 7], STEPS)]
    text = inputs[0]
    C = text.shape[1] + inputs[2].shape[1] + STEPS
    with torch.no_grad():
        ref = _cached(ar, *inputs)
        st = StaticARStep(ar.decoding(text), batch=2, capacity=C)
        st.prefill(*inputs[:4])
        st.step_in.copy_(inputs[4][:, 0])
        torch.cuda.set_sync_debug_mode("error")  # a host sync inside the eager step raises
        try:
            st.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        st.prefill(*inputs[:4])
        st.capture()
        assert st.captured
        got = _static(st, *inputs)  # prefill again: the graph's buffers are refilled
        again = _static(st, *inputs)
    assert _worst(ref, got) <= 1e-4 and _worst(got, again) == 0.0
