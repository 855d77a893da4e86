"""Protocol lists on a small CutSet made on the spot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from valle.eval.protocols import (
    TestItem,
    build_protocol,
    load_prompt_audio,
    prompt_window,
    read_protocol,
    select_utterances,
    words_in_window,
    write_protocol,
)
from valle.eval.rerank import HighestSimilarity, LowestWER, SampleScore, select_best

SR = 8000
# (cut id, speaker, duration s, text, aligned?)
UTTS = [
    ("a1", "A", 5.0, "one two three four five six seven eight nine ten", False),
    ("a2", "A", 7.0, "the quick brown fox jumps over the lazy dog", True),
    ("a3", "A", 12.0, "a long utterance that is out of range", False),
    ("a4", "A", 3.5, "short prompt only", False),
    ("b1", "B", 4.0, "exactly four seconds long", False),
    ("b2", "B", 10.0, "exactly ten seconds long here", False),
    ("b3", "B", 2.0, "too short to prompt", False),
    ("c1", "C", 6.0, "a lonely speaker", False),
    ("d1", "D", 3.9, "just under four", False),
]


@pytest.fixture(scope="module")
def cuts(tmp_path_factory: pytest.TempPathFactory):
    from lhotse import CutSet, Recording, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    d: Path = tmp_path_factory.mktemp("cuts")
    out = []
    for cid, spk, dur, text, aligned in UTTS:
        path = d / f"{cid}.wav"
        t = np.arange(int(dur * SR)) / SR
        sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
        rec = Recording.from_file(path, recording_id=cid)
        alignment = None
        if aligned:
            words = text.split()
            # Uneven word timing: all but the last two words inside the first 2.5 s.
            step = 2.5 / (len(words) - 2)
            items = [AlignmentItem(w, k * step, step) for k, w in enumerate(words[:-2])]
            items += [AlignmentItem(words[-2], 4.0, 1.0), AlignmentItem(words[-1], 5.5, 1.0)]
            alignment = {"word": items}
        sup = SupervisionSegment(
            id=cid,
            recording_id=cid,
            start=0.0,
            duration=dur,
            text=text,
            speaker=spk,
            language="en",
            alignment=alignment,
        )
        cut = rec.to_cut()
        cut.supervisions = [sup]
        out.append(cut)
    return CutSet.from_cuts(out)


def test_select_utterances_keeps_4_to_10_seconds(cuts):
    ids = [c.id for c in select_utterances(cuts)]
    assert ids == ["a1", "a2", "b1", "b2", "c1"]


def test_words_in_window_proportional_and_aligned(cuts):
    # 10 words over 5 s: midpoints 0.25, 0.75, ... -> six words before 3 s.
    inside, after, source = words_in_window(cuts["a1"], 0.0, 3.0)
    assert source == "proportional"
    assert inside == "one two three four five six" and after == "seven eight nine ten"
    inside, after, source = words_in_window(cuts["a2"], 0.0, 3.0)
    assert source == "alignment"
    assert inside == "the quick brown fox jumps over the" and after == "lazy dog"


def test_continuation_list(cuts):
    items = build_protocol(cuts, "cont", seed=0)
    assert [i.id for i in items] == ["a1", "a2", "b1", "b2", "c1"]
    for it in items:
        assert 4.0 <= it.target_duration <= 10.0
        assert it.prompt_cut_id == it.id and it.prompt_duration == 3.0 and it.setting == "cont"
        # The prompt words and the continuation words make up the transcript.
        assert f"{it.prompt_text} {it.target_text}".split() == it.text.split()


def test_cross_sentence_list(cuts, tmp_path):
    items = build_protocol(cuts, "cross-sentence", seed=3)
    by_id = {i.id: i for i in items}
    # c1's speaker has no other utterance: skipped. b2's only candidate prompt is b1 (b3 < 3 s).
    assert sorted(by_id) == ["a1", "a2", "b1", "b2"]
    assert by_id["b2"].prompt_cut_id == "b1" and by_id["b1"].prompt_cut_id == "b2"
    speaker_of = {u[0]: u[1] for u in UTTS}
    for it in items:
        assert 4.0 <= it.target_duration <= 10.0
        assert speaker_of[it.prompt_cut_id] == speaker_of[it.id] == it.speaker
        assert it.prompt_cut_id != it.id
        assert not (
            it.prompt_recording_id == it.recording_id
            and it.prompt_start < it.target_start + it.target_duration
            and it.target_start < it.prompt_start + it.prompt_duration
        )
        assert it.target_text == it.text and it.prompt_text
    # Reproducible from the seed, and a round trip through the jsonl file.
    assert build_protocol(cuts, "cross", seed=3) == items
    seeds = {
        tuple(i.prompt_cut_id for i in build_protocol(cuts, "cross", seed=s)) for s in range(8)
    }
    assert len(seeds) > 1, "the seed must change the prompt choice for speaker A"
    path = write_protocol(items, tmp_path / "cross.jsonl")
    assert read_protocol(path) == items


def _aligned_cut(tmp_path, spans, duration=5.0):
    """One 5 s cut whose words have the given (word, start, end) alignment."""
    from lhotse import Recording, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    path = tmp_path / "w.wav"
    sf.write(path, np.zeros(int(duration * SR), np.float32), SR)
    cut = Recording.from_file(path, recording_id="w").to_cut()
    words = [AlignmentItem(w, a, b - a) for w, a, b in spans]
    cut.supervisions = [
        SupervisionSegment(
            id="w",
            recording_id="w",
            start=0.0,
            duration=duration,
            speaker="W",
            text=" ".join(w for w, _, _ in spans),
            language="en",
            alignment={"word": words},
        )
    ]
    return cut


def test_prompt_window_ends_at_a_word_boundary(tmp_path):
    from lhotse import CutSet

    from valle.eval.protocols import target_offset

    # "gamma" straddles 3 s with its midpoint (2.9 s) inside: the window ends at its start,
    # and it is said after the prompt whole (the midpoint rule at 3 s sharp kept it in the
    # prompt's transcript while the audio held only part of it).
    spans = [("alpha", 0.1, 1.2), ("beta", 1.4, 2.4), ("gamma", 2.5, 3.3), ("delta", 3.6, 4.5)]
    cut = _aligned_cut(tmp_path, spans)
    assert words_in_window(cut, 0.0, 3.0)[:2] == ("alpha beta gamma", "delta")
    assert prompt_window(cut, 3.0) == (2.5, "alpha beta", "gamma delta", "alignment")
    (item,) = build_protocol(CutSet.from_cuts([cut]), "cont", min_seconds=4.0)
    assert item.prompt_duration == 2.5 and target_offset(item) == 2.5
    assert (item.prompt_text, item.target_text) == ("alpha beta", "gamma delta")
    wave, sr = load_prompt_audio(item, CutSet.from_cuts([cut]))
    assert wave.shape == (int(2.5 * SR),)
    # A pause across the mark: the window is the full 3 s, cut in the pause.
    pause = [("alpha", 0.1, 1.2), ("beta", 1.4, 2.8), ("delta", 3.4, 4.5)]
    assert prompt_window(_aligned_cut(tmp_path, pause), 3.0)[:3] == (3.0, "alpha beta", "delta")
    # A first word across the mark: 3 s and the midpoint rule (not an empty prompt).
    long_first = [("supercalifragilistic", 0.0, 3.4), ("end", 3.5, 4.0)]
    assert prompt_window(_aligned_cut(tmp_path, long_first), 3.0)[:3] == (
        3.0, "supercalifragilistic", "end")  # fmt: skip


def test_prompt_audio_is_three_seconds(cuts):
    item = build_protocol(cuts, "cross", seed=0)[0]
    wave, sr = load_prompt_audio(item, cuts)
    assert sr == SR and wave.shape == (3 * SR,)


def test_bad_inputs_have_clear_errors(cuts, tmp_path):
    with pytest.raises(ValueError, match="unknown setting"):
        build_protocol(cuts, "zero-shot")
    with pytest.raises(ValueError, match="no cut of"):
        build_protocol(cuts, "cont", min_seconds=20, max_seconds=30)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "setting": "cont"}\n')
    with pytest.raises(ValueError, match="lacks"):
        read_protocol(bad)


def test_max_items_and_n_samples(cuts):
    items = build_protocol(cuts, "cont", seed=1, max_items=2, n_samples=5)
    assert len(items) == 2 and all(i.n_samples == 5 for i in items)
    assert items == build_protocol(cuts, "cont", seed=1, max_items=2, n_samples=5)
    assert isinstance(items[0], TestItem)


def test_rerank_criteria():
    samples = [
        SampleScore(0, errors=2, ref_len=10, similarity=0.9),
        SampleScore(1, errors=0, ref_len=10, similarity=0.5),
        SampleScore(2, errors=0, ref_len=10, similarity=0.7),
        SampleScore(3, errors=5, ref_len=10, similarity=0.95),
    ]
    assert select_best(samples, LowestWER()).sample == 2  # fewest errors, then best similarity
    assert select_best(samples, HighestSimilarity()).sample == 3
    with pytest.raises(ValueError, match="similarity"):
        select_best([SampleScore(0, errors=1, ref_len=3)], HighestSimilarity())


def test_alignment_times_follow_the_recording_when_cuts_are_trimmed(tmp_path):
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
    from lhotse.supervision import AlignmentItem

    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(12 * SR, np.float32), SR)
    rec = Recording.from_file(path, recording_id="long")
    words = [
        AlignmentItem("early", 2.5, 0.5),
        AlignmentItem("mid", 4.0, 0.8),
        AlignmentItem("late", 5.5, 1.0),
    ]
    sup = SupervisionSegment(
        id="s",
        recording_id="long",
        start=2.0,
        duration=5.0,
        text="early mid late",
        speaker="X",
        alignment={"word": words},
    )
    cuts = CutSet.from_manifests(
        recordings=RecordingSet.from_recordings([rec]),
        supervisions=SupervisionSet.from_segments([sup]),
    ).trim_to_supervisions()
    cut = cuts[0]
    assert cut.start == 2.0
    # In cut time the midpoints are 0.75, 2.4 and 4.0 s: two words inside the first 3 s.
    assert words_in_window(cut, 0.0, 3.0) == ("early mid", "late", "alignment")
    (item,) = build_protocol(cuts, "cont", min_seconds=4.0)
    assert item.prompt_start == 2.0 and item.prompt_text == "early mid"
