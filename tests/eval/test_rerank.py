"""VALL-E 2's selection of one of N samples, [min(SIM, 0.3), 1 - WER], on hand-made scores, and
its choice in ``valle-bench wer`` / ``sim`` (--rerank, --rerank-scores)."""

from __future__ import annotations

import json

import pytest

from valle.bin import bench
from valle.eval import asr as asr_module
from valle.eval.files import read_csv
from valle.eval.rerank import (
    RERANK_CRITERIA,
    CappedSimilarityThenWER,
    SampleScore,
    best_samples,
    read_sample_scores,
    select_best,
    write_sample_scores,
)


def _s(k: int, sim: float, errors: int, ref_len: int = 10) -> SampleScore:
    return SampleScore(k, errors=errors, ref_len=ref_len, similarity=sim)


def test_capped_similarity_first_then_wer() -> None:
    key = CappedSimilarityThenWER()
    # above the cap similarity no longer counts: the fewest errors win
    assert select_best([_s(0, 0.9, 3), _s(1, 0.31, 1), _s(2, 0.3, 2)], key).sample == 1
    # below it the more similar sample wins whatever its WER
    assert select_best([_s(0, 0.29, 0), _s(1, 0.1, 0), _s(2, 0.3, 9)], key).sample == 2
    assert select_best([_s(0, 0.2, 0), _s(1, 0.25, 5)], key).sample == 1
    # WER, not raw errors: 2 errors in 20 tokens beat 2 in 10 (same item, other transcripts)
    assert select_best([_s(0, 0.5, 2, 10), _s(1, 0.5, 2, 20)], key).sample == 1
    # full ties: the lowest sample index
    assert select_best([_s(3, 0.4, 1), _s(1, 0.8, 1), _s(2, 0.5, 1)], key).sample == 1
    # the key itself, as in the paper: the largest [min(SIM, 0.3), 1 - WER] is kept
    samples = [_s(0, 0.1, 1), _s(1, 0.6, 4), _s(2, 0.45, 2), _s(3, 0.2, 0)]
    best = max(samples, key=lambda s: (min(s.similarity, 0.3), 1 - s.errors / s.ref_len))
    assert select_best(samples, key) == best
    assert RERANK_CRITERIA["sim_cap_wer"].needs == {"errors", "similarity"}
    with pytest.raises(ValueError, match="similarity"):
        key.key(SampleScore(0, errors=1, ref_len=3))
    with pytest.raises(ValueError, match="ASR errors"):
        key.key(SampleScore(0, similarity=0.5))


def test_scores_of_two_runs_are_merged_by_item_and_sample(tmp_path) -> None:
    sims = [("a", SampleScore(0, similarity=0.5)), ("a", SampleScore(1, similarity=0.1)),
            ("b", SampleScore(0, similarity=0.35)), ("b", SampleScore(1, similarity=0.9))]  # fmt: skip
    path = write_sample_scores(tmp_path / "sim_samples.csv", sims)
    other = read_sample_scores(path)
    assert other[("b", 1)] == SampleScore(1, similarity=0.9)
    errors = [SampleScore(0, errors=2, ref_len=10), SampleScore(1, errors=0, ref_len=10)]
    own = [errors, errors]  # the same WER per sample in both items, as a `wer` run scores them
    assert best_samples(["a", "b"], own, CappedSimilarityThenWER(), other) == [0, 1]
    with pytest.raises(ValueError, match="item c"):
        best_samples(["c"], [own[0]], CappedSimilarityThenWER(), other)


class DropLastWordASR:
    """Fake ASR (as in test_bench_cli): the reference minus its last word, except for waves
    160 samples longer than the corpus utterance, which are transcribed perfectly."""

    def __init__(self, texts_by_samples: dict[int, str]) -> None:
        self.texts = texts_by_samples

    def transcribe(self, waves, sample_rate, language=None):
        return [
            " ".join(self.texts[len(w)].split()[:-1])
            if len(w) in self.texts
            else self.texts[len(w) - 160]
            for w in waves
        ]


def test_bench_wer_reranks_with_the_similarities_of_a_sim_run(
    flite_corpus, monkeypatch, tmp_path, capsys
) -> None:
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet

    cuts_path, audio_dir = flite_corpus
    texts = {c.num_samples: c.supervisions[0].text for c in CutSet.from_file(cuts_path)}
    monkeypatch.setitem(
        asr_module.ASR_BACKENDS, "fake", lambda path, device: DropLastWordASR(texts)
    )
    hyp = tmp_path / "system"
    hyp.mkdir()
    ids = []
    for wav in sorted(audio_dir.glob("*.wav")):
        wave, sr = sf.read(wav, dtype="float32")
        sf.write(hyp / f"{wav.stem}-0.wav", wave, sr)  # drops a word
        sf.write(hyp / f"{wav.stem}-1.wav", np.concatenate([wave, np.zeros(160, "float32")]), sr)
        ids.append(wav.stem)
    args = ["wer", "--hyp-dir", str(hyp), "--ref", str(cuts_path), "--asr", "fake",
            "--n-samples", "2", "--no-progress"]  # fmt: skip

    def run(sim_of_perfect: float, out: str) -> dict:
        sims = [(i, SampleScore(0, similarity=0.5)) for i in ids]
        sims += [(i, SampleScore(1, similarity=sim_of_perfect)) for i in ids]
        path = write_sample_scores(tmp_path / f"{out}_sim.csv", sims)
        assert bench.main([*args, "--out-dir", str(tmp_path / out), "--rerank", "sim_cap_wer",
                           "--rerank-scores", str(path)]) == 0  # fmt: skip
        return json.loads((tmp_path / out / "wer_summary.json").read_text())

    # both samples similar enough (>= 0.3): the perfect sample wins on WER
    summary = run(0.35, "similar")
    assert summary["wer_best_of_n"] == 0.0 and summary["rerank"] == "sim_cap_wer"
    # the perfect sample too dissimilar: the one that drops a word is kept
    assert run(0.1, "dissimilar")["wer_best_of_n"] == summary["wer"] > 0
    rows = read_csv(tmp_path / "similar" / "wer_samples.csv")
    assert len(rows) == 2 * len(ids) and {r["sample"] for r in rows} == {"0", "1"}
    # a criterion that reads similarities without them: a clear error
    assert bench.main([*args, "--out-dir", str(tmp_path / "x"), "--rerank", "sim_cap_wer"]) == 2
    assert "--rerank-scores" in capsys.readouterr().err
