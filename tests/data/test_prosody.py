"""RALL-E prosody tokens (valle/data/prosody.py, valle/bin/prosody.py): the bucketing against
its definition, per-phoneme F0 on hand-made tracks and on tones, the resumable stage."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet

from tests.align.conftest import tokenize_tiny
from valle.data import prosody as P
from valle.data.prosody import (
    PitchQuantizer,
    ProsodyExtractor,
    annotate_cuts,
    duration_tokens,
    frame_f0,
    phoneme_f0,
)


def test_buckets_are_linear_in_log_f0_with_unvoiced_as_zero() -> None:
    q = PitchQuantizer(256, 50.0, 600.0)
    assert q(np.array([0.0, -1.0, np.nan])).tolist() == [0, 0, 0]
    assert q(np.array([50.0, 30.0]))[0] == 1 and q(np.array([30.0]))[0] == 1  # below: bucket 1
    assert q(np.array([600.0, 5000.0])).tolist() == [256, 256]  # the top edge and above: M_p
    f = np.exp(np.linspace(math.log(50), math.log(599.9), 2000))
    ids = q(f)
    assert (np.diff(ids) >= 0).all() and set(ids.tolist()) == set(range(1, 257))
    # definition: bucket b holds log f in [log 50 + (b-1) w, log 50 + b w), w = log(12) / 256
    w = math.log(12.0) / 256
    want = 1 + np.floor((np.log(f) - math.log(50)) / w).astype(int)
    assert (ids == np.clip(want, 1, 256)).all()
    # an octave is the same number of buckets anywhere in the range
    assert q(np.array([200.0]))[0] - q(np.array([100.0]))[0] == pytest.approx(256 * math.log(2) / math.log(12), abs=1)  # fmt: skip
    tokens = np.arange(0, 257)
    assert (q(q.center(tokens)) == tokens).all()


def test_durations_clip_at_m_d() -> None:
    assert duration_tokens([1, 5, 32, 33, 100], 32).tolist() == [1, 5, 32, 32, 32]


def test_phoneme_pitch_is_the_mean_over_its_voiced_frames() -> None:
    f0 = np.array([0, 100, 200, 0, 0, 300, 0, 150.0])
    # phonemes: frames [0,3) [3,5) [5,6) [6,8)
    assert phoneme_f0(f0, [3, 2, 1, 2]).tolist() == [150.0, 0.0, 300.0, 150.0]


def _tone(freq: float, seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return 0.4 * np.sin(2 * np.pi * freq * t)


def test_frame_f0_finds_a_tone_and_silence_is_unvoiced() -> None:
    sr, hop = 16000, 320  # 50 Hz code frames
    wave = np.concatenate([_tone(220.0, 0.6), np.zeros(int(0.4 * sr))])
    T = len(wave) // hop
    f0 = frame_f0(wave, sr, hop, T)
    assert f0.shape == (T,)
    voiced = f0[5:25]
    assert (voiced > 0).all() and np.abs(voiced - 220.0).max() < 5.0
    assert (f0[-10:] == 0).all()
    pitch = PitchQuantizer()(phoneme_f0(f0, [30, T - 30]))
    assert pitch[0] == PitchQuantizer()(np.array([220.0]))[0] and pitch[1] == 0


def test_the_stage_stores_tokens_on_the_cuts_and_resumes(tmp_path: Path, monkeypatch) -> None:
    from valle.align.features import num_code_frames
    from valle.ar.pointer import uniform_durations
    from valle.data.tokenize import cut_phonemes

    cuts, _ = tokenize_tiny(tmp_path, speakers=2, utts=2)
    with_d = []
    for c in cuts:
        S, T = len(cut_phonemes(c)), num_code_frames(c)
        d = uniform_durations(torch.tensor([T]), torch.tensor([S]), S)[0].tolist()
        with_d.append(c.with_custom("durations", d))
    src = tmp_path / "in.jsonl.gz"
    CutSet.from_cuts(with_d).to_file(src)
    out = tmp_path / "prosody" / "cuts.jsonl.gz"
    from valle.bin.prosody import main

    assert main(["--cuts", str(src), "--out", str(out), "--chunk-size", "3", "--no-progress"]) == 0
    got = {c.id: c for c in CutSet.from_file(out)}
    q = PitchQuantizer()
    for c in with_d:
        pitch, dur = got[c.id].custom["pitch_tokens"], got[c.id].custom["duration_tokens"]
        assert len(pitch) == len(dur) == len(c.custom["durations"])
        assert dur == [min(d, 32) for d in c.custom["durations"]]
        assert all(0 <= p <= 256 for p in pitch)
        tone = 180 + 40 * int(c.id[3]) + 7 * int(c.id.split("utt")[1][0])  # tests.data.factories
        voiced = [p for p in pitch if p > 0]
        assert voiced and abs(np.median(voiced) - q(np.array([tone]))[0]) <= 2
    # a rerun reuses every finished chunk (the extractor is not called again)
    monkeypatch.setattr(ProsodyExtractor, "__call__", lambda self, cut: pytest.fail("recomputed"))
    again = annotate_cuts(CutSet.from_file(src), out, progress=False, chunk_size=3)
    assert [c.custom["pitch_tokens"] for c in again] == [got[c.id].custom["pitch_tokens"] for c in again]  # fmt: skip


def test_a_cut_without_durations_is_a_clear_error(tmp_path: Path) -> None:
    cuts, _ = tokenize_tiny(tmp_path, speakers=1, utts=1)
    with pytest.raises(ValueError, match="valle.bin.align"):
        ProsodyExtractor()(cuts[0])


def test_featurizers_read_the_fields_and_name_the_stage_when_missing(tmp_path: Path) -> None:
    cuts, _ = tokenize_tiny(tmp_path, speakers=1, utts=1)
    c = cuts[0].with_custom("pitch_tokens", [0, 5, 7]).with_custom("duration_tokens", [1, 2, 3])
    assert P.PitchTokens()(c).tolist() == [0, 5, 7]
    assert P.DurationTokens()(c).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="valle.bin.prosody"):
        P.PitchTokens()(cuts[0])


def test_the_stage_output_feeds_a_ralle_batch_and_its_loss(tmp_path: Path) -> None:
    """Cuts with durations -> the prosody stage -> the dataset with RALL-E's data request ->
    a finite loss (the featurizers, pads and lengths fit the model)."""
    from valle.align.features import num_code_frames
    from valle.ar.pointer import uniform_durations
    from valle.data.dataset import SpeechTokenDataset
    from valle.data.tokenize import cut_phonemes
    from valle.registry import build_model, data_request
    from valle.testing.model import tiny_config
    from valle.text import SymbolTable

    cuts, tokens = tokenize_tiny(tmp_path, speakers=1, utts=2)
    with_d = []
    for c in cuts:
        S, T = len(cut_phonemes(c)), num_code_frames(c)
        with_d.append(c.with_custom("durations", uniform_durations(
            torch.tensor([T]), torch.tensor([S]), S)[0].tolist()))  # fmt: skip
    out = annotate_cuts(with_d, tmp_path / "p" / "cuts.jsonl.gz", progress=False)
    symbols = SymbolTable.from_file(tokens)
    cfg = tiny_config("ralle", text_vocab_size=len(symbols), num_codebooks=2,
                      overrides=["prosody.pitch_buckets=256", "prosody.max_duration=32"])  # fmt: skip
    request = data_request(cfg, ("ar",))
    batch = SpeechTokenDataset(symbols, featurizers=request.featurizers)[out]
    assert batch["pitch_tokens"].shape == batch["text_tokens"].shape
    assert torch.equal(batch["pitch_tokens_lens"], batch["text_lens"])
    model = build_model(cfg)
    loss, metrics = model.loss(batch, stages=("ar",))
    assert torch.isfinite(loss) and "ar/pitch_loss" in metrics


def _with_uniform_durations(cuts) -> list:
    from valle.align.features import num_code_frames
    from valle.ar.pointer import uniform_durations
    from valle.data.tokenize import cut_phonemes

    out = []
    for c in cuts:
        S, T = len(cut_phonemes(c)), num_code_frames(c)
        d = uniform_durations(torch.tensor([T]), torch.tensor([S]), S)[0].tolist()
        out.append(c.with_custom("durations", d))
    return out


def test_a_rerun_recomputes_only_the_chunks_whose_inputs_changed(
    tmp_path: Path, monkeypatch
) -> None:
    """The resumable chunks notice changed durations and changed audio (same cut ids): such a
    chunk is recomputed, the others are reused."""
    from tests.data.factories import write_tone

    cuts = _with_uniform_durations(tokenize_tiny(tmp_path, speakers=2, utts=2)[0])  # 4 cuts
    out = tmp_path / "prosody" / "cuts.jsonl.gz"
    first = {c.id: c for c in annotate_cuts(cuts, out, progress=False, chunk_size=2)}
    seen: list[str] = []
    real_call = ProsodyExtractor.__call__

    def counting(self, cut):
        seen.append(cut.id)
        return real_call(self, cut)

    monkeypatch.setattr(ProsodyExtractor, "__call__", counting)
    # new durations for cut 0 (same sum, another split): its chunk (cuts 0, 1) is redone
    d = list(cuts[0].custom["durations"])
    i = max(range(len(d)), key=d.__getitem__)  # a phoneme of >= 2 frames gives one away
    d[i], d[i - 1] = d[i] - 1, d[i - 1] + 1
    assert d != cuts[0].custom["durations"] and min(d) >= 1
    changed = [cuts[0].with_custom("durations", d), *cuts[1:]]
    again = {c.id: c for c in annotate_cuts(changed, out, progress=False, chunk_size=2)}
    assert seen == [cuts[0].id, cuts[1].id]
    assert again[cuts[0].id].custom["duration_tokens"] == [min(x, 32) for x in d]
    assert again[cuts[2].id].custom == first[cuts[2].id].custom
    # replaced audio of cut 3 (same path, another tone): its chunk (cuts 2, 3) is redone
    seen.clear()
    wav = Path(cuts[3].recording.sources[0].source)
    write_tone(wav, cuts[3].duration, cuts[3].sampling_rate, 400.0, seed=99)
    annotate_cuts(changed, out, progress=False, chunk_size=2)
    assert seen == [cuts[2].id, cuts[3].id]
    # unchanged inputs: nothing is recomputed
    seen.clear()
    annotate_cuts(changed, out, progress=False, chunk_size=2)
    assert seen == []
