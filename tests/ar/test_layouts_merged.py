"""The merged-codes layout (VALL-E R Sec 3.1): one codebook-1 code per window of m frames;
phoneme durations counted in windows; the codec's merge rate against the AR's."""

from __future__ import annotations

import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from valle.ar.layouts import (
    FirstCodebookLayout,
    MergedFirstCodebookLayout,
    MergedFirstCodebookLayoutConfig,
)
from valle.ar.windows import (
    check_merge_rate,
    codec_merge_rate,
    snap_durations,
    window_durations,
)
from valle.config import ConfigError
from valle.data.codec_info import CodecInfo
from valle.testing.model import tiny_config

V = 50
L = torch.long
MERGED = ["ar.layout.kind=merged_first_codebook", "ar.layout.rate=2"]


def merged_codes(lens: list[int], m: int, q: int = 3, seed: int = 0) -> torch.Tensor:
    """Random codes (B, T, q) whose codebook 1 is constant on windows [k m, (k+1) m)."""
    g = torch.Generator().manual_seed(seed)
    T = max(lens)
    codes = torch.randint(0, V, (len(lens), T, q), generator=g)
    windows = torch.randint(0, V, (len(lens), -(-T // m)), generator=g)
    codes[..., 0] = windows.repeat_interleave(m, dim=1)[:, :T]
    return codes


# --------------------------------------------------------------------------- the layout


@settings(max_examples=40, deadline=None)
@given(
    lens=st.lists(st.integers(0, 11), min_size=1, max_size=4),
    m=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_one_step_per_window_and_back(lens: list[int], m: int, seed: int) -> None:
    codes = merged_codes(lens, m, seed=seed)
    lens_t = torch.tensor(lens)
    layout = MergedFirstCodebookLayout(V, m)
    steps, n, valid = layout.to_steps(codes, lens_t)
    assert layout.frames_per_step == m and layout.step_shape == ()
    assert n.tolist() == [-(-t // m) for t in lens]  # the last partial window is a step
    assert torch.equal(layout.max_steps(lens_t), n)
    tf = layout.teacher_forcing(codes, lens_t)
    for b, t in enumerate(lens):
        k = int(n[b])
        assert torch.equal(steps[b, :k], codes[b, 0:t:m, 0])  # frames 0, m, 2m, ...
        assert valid[b, :k].all() and not valid[b, k:].any()
        frames = layout.from_steps(steps[b, :k])
        assert frames.shape == (m * k, 1)  # m frames a step when the length is not known
        assert torch.equal(layout.from_steps(steps[b, :k], t)[:, 0], codes[b, :t, 0])
        assert int(tf.lens[b]) == k + 1 and tf.targets[b, k] == layout.eos_id
        assert torch.equal(tf.targets[b, :k], steps[b, :k])


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("P", [0, 1, 2, 3, 4, 5, 6, 7])
def test_prompt_seam_keeps_every_frame_once(m: int, P: int) -> None:
    """Split one merged utterance at frame P: the prompt's steps are its windows (a partial
    last one included), each prompt frame is read once; the continuation's windows follow.
    At a window boundary (P mod m = 0) prompt + continuation are exactly the utterance."""
    T = 13
    codes = merged_codes([T], m, seed=P)
    layout = MergedFirstCodebookLayout(V, m)
    whole, _, _ = layout.to_steps(codes, torch.tensor([T]))
    prompt, k, _ = layout.to_steps(codes[:, :P], torch.tensor([P]))
    assert int(k) == -(-P // m)
    assert torch.equal(prompt[0, : int(k)], whole[0, : int(k)])  # no window lost or repeated
    # every prompt frame lies in exactly one of the prompt's steps
    covered = layout.from_steps(prompt[0, : int(k)], P)[:, 0]
    assert torch.equal(covered, codes[0, :P, 0])
    rest = whole[0, int(k) :]  # what a perfect AR continues with
    if P % m == 0:
        stream = torch.cat([codes[0, :P, 0], layout.from_steps(rest, T - P)[:, 0]])
        assert torch.equal(stream, codes[0, :, 0])


def test_rate_one_is_the_first_codebook_layout() -> None:
    codes = merged_codes([7, 4, 0], 1)
    lens = torch.tensor([7, 4, 0])
    a, b = FirstCodebookLayout(V), MergedFirstCodebookLayout(V, 1)
    for x, y in zip(a.to_steps(codes, lens), b.to_steps(codes, lens), strict=True):
        assert torch.equal(x, y)
    for x, y in zip(a.teacher_forcing(codes, lens), b.teacher_forcing(codes, lens), strict=True):
        assert torch.equal(x, y)
    assert torch.equal(a.from_steps(codes[0, :, 0]), b.from_steps(codes[0, :, 0]))
    assert torch.equal(a.max_steps(lens), b.max_steps(lens))
    assert (a.bos_id, a.eos_id, a.num_ids) == (b.bos_id, b.eos_id, b.num_ids)


def test_config_builds_the_layout_and_rejects_a_bad_rate() -> None:
    layout = MergedFirstCodebookLayoutConfig(rate=3).build(V)
    assert isinstance(layout, MergedFirstCodebookLayout) and layout.rate == 3
    with pytest.raises(ConfigError, match="rate"):
        MergedFirstCodebookLayoutConfig(rate=0)


# --------------------------------------------------------------------------- window durations


@settings(max_examples=200, deadline=None)
@given(
    d=st.lists(st.integers(0, 7), min_size=1, max_size=12),
    m=st.integers(1, 4),
)
def test_window_durations_rule(d: list[int], m: int) -> None:
    frames = torch.tensor([d])
    T = int(frames.sum())
    W = -(-T // m)
    voiced = sum(x > 0 for x in d)
    if voiced > W:
        with pytest.raises(ValueError, match="windows"):
            window_durations(frames, torch.tensor([T]), m)
        return
    w = window_durations(frames, torch.tensor([T]), m)[0]
    assert int(w.sum()) == W  # the windows of the row, each once
    assert ((w >= 1) == (frames[0] > 0)).all()  # >= 1 step with frames, 0 without
    if m == 1:
        assert torch.equal(w, frames[0])
    ends = w.cumsum(0)
    natural = -(-torch.tensor(d).cumsum(0) // m)  # window of the first frame: ceil(E / m)
    if all(x > 0 for x in d) and bool((natural.diff(prepend=torch.zeros(1, dtype=L)) >= 1).all()):
        assert torch.equal(ends, natural)  # nothing to fix: the plain rule
    # monotone fix: boundaries stay ordered and never cross the row's end
    assert (ends.diff() >= 0).all() and int(ends[-1]) == W


@settings(max_examples=100, deadline=None)
@given(d=st.lists(st.integers(0, 7), min_size=1, max_size=10), m=st.integers(1, 4))
def test_snapped_durations_keep_the_windows_and_the_frames(d: list[int], m: int) -> None:
    """The per-frame alignment the AR's windows imply (what the NAR reads): same windows,
    same frames, boundaries on window edges; the identity at rate 1."""
    frames = torch.tensor([d])
    T = int(frames.sum())
    if sum(x > 0 for x in d) > -(-T // m):
        return  # no windows for every phoneme: window_durations' error (tested above)
    lens = torch.tensor([T])
    snapped = snap_durations(frames, lens, m)
    assert int(snapped.sum()) == T and (snapped >= 0).all()
    assert torch.equal(window_durations(snapped, lens, m), window_durations(frames, lens, m))
    ends = snapped[0].cumsum(0)
    assert all(int(e) % m == 0 or int(e) == T for e in ends)
    if m == 1:
        assert torch.equal(snapped, frames)


def test_window_durations_batch_with_padding_and_clear_errors() -> None:
    d = torch.tensor([[3, 1, 1, 2, 0, 5], [4, 4, 0, 0, 0, 0]])
    lens = d.sum(-1)
    w = window_durations(d, lens, 2)
    assert w.tolist() == [[2, 1, 1, 1, 0, 1], [2, 2, 0, 0, 0, 0]]
    with pytest.raises(ValueError, match="sum"):
        window_durations(d, lens + 1, 2)
    with pytest.raises(ValueError, match="row 0: 4 phonemes with frames but only 2 windows"):
        window_durations(torch.tensor([[1, 1, 1, 1]]), torch.tensor([4]), 3)


# --------------------------------------------------------------------------- merge rates


def _info(rates: list[int] | None) -> CodecInfo:
    options = {} if rates is None else {"merge_rates": rates}
    name = "mel_rvq" if rates is None else "mel_rvq_merged"
    return CodecInfo(name, 16000, 80.0, 4, 16, options=options)


def test_codec_merge_rate_from_info_dict_and_codec() -> None:
    assert codec_merge_rate(_info(None)) == 1
    assert codec_merge_rate(_info([2, 1, 1, 1])) == 2
    assert codec_merge_rate({"options": {"merge_rates": [3, 1]}}) == 3

    class Merged:  # a codec object reports its loader options, as a CodecInfo does
        options = {"merge_rates": [2, 1]}

    assert codec_merge_rate(Merged()) == 2


def test_a_merged_codec_object_reports_its_merge_rate_through_its_options() -> None:
    """The merged codec declares its loader options, so its rate is read the same way as a
    recorded CodecInfo's (no probing for a ``merge_rates`` attribute)."""
    from valle.codec import MergedRVQCodec
    from valle.testing.codec import tiny_encodec_codec

    base = tiny_encodec_codec()
    merged = MergedRVQCodec(base, [2] + [1] * (base.num_codebooks - 1))
    assert merged.options == {"merge_rates": [2] + [1] * (base.num_codebooks - 1)}
    assert codec_merge_rate(merged) == 2
    assert codec_merge_rate(base) == 1


def test_merge_rate_mismatch_is_an_error_or_a_warning(caplog) -> None:
    merged_model = tiny_config("vallr", overrides=MERGED)
    plain_model = tiny_config("vallr")
    check_merge_rate(merged_model, _info([2, 1, 1, 1]))  # matches: silent
    check_merge_rate(plain_model, _info(None))
    with pytest.raises(ValueError, match="merge_rates \\[2, 1, ...\\].*or set ar.layout.rate=1"):
        check_merge_rate(merged_model, _info(None))
    with caplog.at_level(logging.WARNING, logger="valle.ar.windows"):
        check_merge_rate(merged_model, _info(None), strict=False)  # inference: a warning
        check_merge_rate(plain_model, _info([2, 1, 1, 1]))
    text = caplog.text
    assert "merged at rate 1" in text
    assert "ar.layout.kind=merged_first_codebook ar.layout.rate=2" in text
    # a model whose steps are groups of codes (VALL-E 2) is not the pointer's business
    check_merge_rate(tiny_config("valle2"), _info([2, 1, 1, 1]))


def test_the_merge_rate_is_checked_for_any_layout_declaring_one_code_per_window() -> None:
    """check_merge_rate asks the layout whether each step is one codebook-1 code of a window
    (its declared ``one_code_per_window``), not for its kind's name: a layout of a new kind
    that declares it is checked, and the kinds say what they are."""
    import dataclasses

    from valle.ar.layouts import (
        FirstCodebookLayoutConfig,
        GroupedCodeLayout,
        GroupedLayoutConfig,
        LayoutConfig,
    )

    @dataclasses.dataclass(frozen=True)
    class WindowsOfThree(LayoutConfig):  # a kind check_merge_rate never heard of
        one_code_per_window = True
        kind: str = "windows_of_three"
        rate: int = 3

    cfg = tiny_config("vallr")
    cfg = dataclasses.replace(cfg, ar=dataclasses.replace(cfg.ar, layout=WindowsOfThree()))
    with pytest.raises(ValueError, match="one step per 3 frames .*kind=windows_of_three"):
        check_merge_rate(cfg, _info(None))
    check_merge_rate(cfg, _info([3, 1, 1, 1]))  # matches: silent
    assert FirstCodebookLayoutConfig.one_code_per_window
    assert MergedFirstCodebookLayoutConfig.one_code_per_window
    assert not GroupedLayoutConfig.one_code_per_window
    assert FirstCodebookLayout(V).one_code_per_window
    assert MergedFirstCodebookLayout(V, 2).one_code_per_window
    assert not GroupedCodeLayout(V, 2).one_code_per_window
