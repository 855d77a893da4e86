"""RALL-E's duration-guided mask (Sec 3.3) checked against its definition by brute force.

Definition: a speech token whose aligned phoneme is a attends to the phonemes and prosody
tokens j with |j - a| <= k (real ones only), to the speech tokens up to its own and to
nothing else; text sees all text; prosody sees all text and the prosody up to its own.
"""

from __future__ import annotations

import pytest
import torch

from valle.ar.masks import DurationGuidedMask, ProsodyPrefixMask, attention_mask
from valle.ar.prosody import frame_alignment
from valle.modules.positions import AUDIO, NO_ALIGN, PROSODY, TEXT, SegmentPositions


def _random_case(seed: int, B: int = 4):
    g = torch.Generator().manual_seed(seed)
    text_lens = torch.randint(1, 8, (B,), generator=g)
    S = int(text_lens.max())
    durations = torch.zeros(B, S, dtype=torch.long)
    for b in range(B):
        durations[b, : text_lens[b]] = torch.randint(1, 5, (int(text_lens[b]),), generator=g)
    frames = durations.sum(-1)
    N = int(frames.max()) + 1  # [BOS, c_0 .. c_{T-1}]: input k predicts frame k (k = T: EOS)
    align = frame_alignment(torch.zeros(B, 0, dtype=torch.long), torch.zeros(B, dtype=torch.long),
                            durations, text_lens, N)  # fmt: skip
    pos = (
        SegmentPositions.span(TEXT, text_lens, S)
        .cat(SegmentPositions.span(PROSODY, text_lens, S))
        .cat(SegmentPositions.span(AUDIO, frames + 1, N, align=align))
    )
    return text_lens, durations, frames, S, N, pos


def _aligned_phoneme(d: list[int], frame: int) -> int:
    """Brute force: the phoneme whose frames hold ``frame`` (the last one past the end)."""
    start = 0
    for j, n in enumerate(d):
        if start <= frame < start + n:
            return j
        start += n
    return len(d) - 1


@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("seed", range(5))
def test_every_speech_token_sees_exactly_the_phonemes_within_k(k: int, seed: int) -> None:
    text_lens, durations, frames, S, N, pos = _random_case(seed)
    mask = attention_mask(DurationGuidedMask(k), pos, pos)  # (B, L, L)
    for b in range(len(text_lens)):
        n_text, n_audio = int(text_lens[b]), int(frames[b]) + 1
        d = durations[b, :n_text].tolist()
        for t in range(n_audio):
            q = 2 * S + t
            a = _aligned_phoneme(d, t)
            assert int(pos.align[b, q]) == a  # type: ignore[index]
            want_phonemes = {j for j in range(n_text) if abs(j - a) <= k}
            seen_text = {j for j in range(S) if mask[b, q, j]}
            seen_pros = {j for j in range(S) if mask[b, q, S + j]}
            seen_audio = {m for m in range(N) if mask[b, q, 2 * S + m]}
            assert seen_text == want_phonemes, (b, t, a)
            assert seen_pros == want_phonemes, (b, t, a)
            assert seen_audio == set(range(t + 1)), (b, t)  # nothing ahead in the audio


@pytest.mark.parametrize("seed", range(3))
def test_text_and_prosody_queries_follow_the_prefix_rule(seed: int) -> None:
    text_lens, _, frames, S, N, pos = _random_case(seed)
    mask = attention_mask(DurationGuidedMask(1), pos, pos)
    plain = attention_mask(ProsodyPrefixMask(), pos, pos)
    assert torch.equal(mask[:, : 2 * S], plain[:, : 2 * S])
    for b in range(len(text_lens)):
        n = int(text_lens[b])
        for i in range(n):
            assert {j for j in range(2 * S + N) if mask[b, i, j]} == set(range(n))
            seen = {j for j in range(2 * S + N) if mask[b, S + i, j]}
            assert seen == set(range(n)) | {S + j for j in range(i + 1)}


def test_without_the_window_speech_sees_all_phonemes_and_prosody() -> None:
    text_lens, _, frames, S, N, pos = _random_case(7)
    mask = attention_mask(ProsodyPrefixMask(), pos, pos)
    for b in range(len(text_lens)):
        n = int(text_lens[b])
        for t in range(int(frames[b]) + 1):
            seen = {j for j in range(2 * S + N) if mask[b, 2 * S + t, j]}
            want = set(range(n)) | {S + j for j in range(n)} | {2 * S + m for m in range(t + 1)}
            assert seen == want


def test_an_unaligned_speech_token_falls_back_to_the_prefix_rule() -> None:
    lens = torch.tensor([3])
    pos = (
        SegmentPositions.span(TEXT, lens, 3)
        .cat(SegmentPositions.span(PROSODY, lens, 3))
        .cat(SegmentPositions.span(AUDIO, lens, 3, align=torch.tensor([[NO_ALIGN, 0, 2]])))
    )
    mask = attention_mask(DurationGuidedMask(0), pos, pos)
    assert mask[0, 6, :6].all()  # NO_ALIGN: every phoneme and prosody token
    assert mask[0, 7, :6].tolist() == [True, False, False, True, False, False]
    assert mask[0, 8, :6].tolist() == [False, False, True, False, False, True]


def test_the_policy_reads_only_descriptors_so_a_cached_step_gets_the_same_row() -> None:
    """One query row against the full key list equals that row of the full mask."""
    text_lens, _, frames, S, N, pos = _random_case(3, B=2)
    full = attention_mask(DurationGuidedMask(1), pos, pos)
    q = 2 * S + 2
    one = SegmentPositions(
        pos.segment[:, q : q + 1],
        pos.index[:, q : q + 1],
        pos.valid[:, q : q + 1],
        pos.align[:, q : q + 1],  # type: ignore[index]
    )
    keys = SegmentPositions(pos.segment, pos.index, pos.valid)  # a cache keeps no align
    assert torch.equal(attention_mask(DurationGuidedMask(1), one, keys)[:, 0], full[:, q])
