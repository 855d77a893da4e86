"""``valle-bench`` end to end on a flite corpus made on the spot (ASR faked, encoder real)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from valle.bin import bench
from valle.eval import asr as asr_module
from valle.eval.files import read_csv


class DropLastWordASR:
    """Fake ASR: answers the reference text of the wave's duration minus its last word."""

    sample_rate = 16000

    def __init__(self, texts_by_samples: dict[int, str]) -> None:
        self.texts = texts_by_samples

    def transcribe(self, waves, sample_rate, language=None):
        # Waves 160 samples longer than a corpus utterance are "perfect" samples.
        return [
            " ".join(self.texts[len(w)].split()[:-1])
            if len(w) in self.texts
            else self.texts[len(w) - 160]
            for w in waves
        ]


@pytest.fixture()
def fake_asr(monkeypatch, flite_corpus):
    from lhotse import CutSet

    cuts = CutSet.from_file(flite_corpus[0])
    texts = {c.num_samples: c.supervisions[0].text for c in cuts}
    monkeypatch.setitem(
        asr_module.ASR_BACKENDS, "fake", lambda path, device: DropLastWordASR(texts)
    )


def test_protocol_wer_sim_report(flite_corpus, fake_asr, tmp_path, capsys):
    cuts_path, audio_dir = flite_corpus
    lst = tmp_path / "cross.jsonl"
    assert (
        bench.main(
            [
                "protocol",
                "--cuts",
                str(cuts_path),
                "--setting",
                "cross",
                "--seed",
                "1",
                "--out",
                str(lst),
            ]
        )
        == 0
    )
    items = [json.loads(line) for line in lst.read_text().splitlines()]
    assert len(items) == 6 and all(i["prompt_cut_id"].split("-")[0] == i["speaker"] for i in items)

    # The "system" is the corpus audio itself, copied to a hypothesis directory.
    hyp = tmp_path / "system"
    hyp.mkdir()
    for i in items:
        shutil.copy(audio_dir / f"{i['id']}.wav", hyp / f"{i['id']}.wav")

    wer_out = tmp_path / "wer"
    assert (
        bench.main(
            [
                "wer",
                "--hyp-dir",
                str(hyp),
                "--ref",
                str(lst),
                "--asr",
                "fake",
                "--out-dir",
                str(wer_out),
                "--system",
                "copy",
            ]
        )
        == 0
    )
    summary = json.loads((wer_out / "wer_summary.json").read_text())
    rows = read_csv(wer_out / "wer_rows.csv")
    # One deletion per utterance: corpus WER = 6 / total reference words.
    n_words = sum(len(r["reference"].split()) for r in rows)
    assert summary["deletions"] == 6 and summary["wer"] == pytest.approx(6 / n_words)
    assert all(r["deletions"] == "1" and r["substitutions"] == "0" for r in rows)

    sim_out = tmp_path / "sim"
    assert (
        bench.main(
            [
                "sim",
                "--hyp-dir",
                str(hyp),
                "--list",
                str(lst),
                "--cuts",
                str(cuts_path),
                "--out-dir",
                str(sim_out),
                "--system",
                "copy",
            ]
        )
        == 0
    )
    sim = json.loads((sim_out / "sim_summary.json").read_text())
    assert sim["sim_utt"] == pytest.approx(1.0, abs=1e-4)  # output == original utterance
    assert 0.6 < sim["sim_o"] < 0.99  # same speaker, other sentence
    assert sim["sim_r"] is None

    report = tmp_path / "report" / "results"
    assert (
        bench.main(
            [
                "report",
                "--inputs",
                str(wer_out / "wer_summary.json"),
                str(sim_out / "sim_summary.json"),
                "--out",
                str(report),
            ]
        )
        == 0
    )
    md = report.with_suffix(".md").read_text()
    assert "| copy |" in md and "SIM-utt" in md
    assert report.with_suffix(".png").stat().st_size > 1000
    row = read_csv(report.with_suffix(".csv"))[0]
    assert row["system"] == "copy" and float(row["wer_percent"]) == pytest.approx(100 * 6 / n_words)


def test_missing_outputs_are_a_clear_error(flite_corpus, fake_asr, tmp_path, capsys):
    cuts_path, _ = flite_corpus
    empty = tmp_path / "empty"
    empty.mkdir()
    code = bench.main(
        [
            "wer",
            "--hyp-dir",
            str(empty),
            "--ref",
            str(cuts_path),
            "--asr",
            "fake",
            "--out-dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "--allow-missing" in capsys.readouterr().err


def test_ground_truth_row_from_cuts(flite_corpus, fake_asr, tmp_path):
    cuts_path, _ = flite_corpus
    out = tmp_path / "gt"
    assert (
        bench.main(
            [
                "wer",
                "--audio-from-cuts",
                str(cuts_path),
                "--ref",
                str(cuts_path),
                "--asr",
                "fake",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads((out / "wer_summary.json").read_text())
    assert summary["system"] == "ground truth" and summary["utterances"] == 6


def test_subcommands_are_a_registry():
    assert {"wer", "sim", "protocol", "report"} <= set(bench.SUBCOMMANDS)
    with pytest.raises(ValueError, match="twice"):
        bench.subcommand("wer", "again", lambda p: None)(lambda a: 0)


def test_best_of_n_samples(flite_corpus, fake_asr, tmp_path):
    import numpy as np
    import soundfile as sf

    cuts_path, audio_dir = flite_corpus
    hyp = tmp_path / "system"
    hyp.mkdir()
    for wav in sorted(audio_dir.glob("*.wav")):
        wave, sr = sf.read(wav, dtype="float32")
        sf.write(hyp / f"{wav.stem}-0.wav", wave, sr)  # drops a word
        sf.write(hyp / f"{wav.stem}-1.wav", np.concatenate([wave, np.zeros(160, "float32")]), sr)
    out = tmp_path / "wer"
    args = ["wer", "--hyp-dir", str(hyp), "--ref", str(cuts_path), "--asr", "fake"]
    assert bench.main([*args, "--n-samples", "2", "--out-dir", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "wer_summary.json").read_text())
    assert summary["deletions"] == 6 and summary["wer"] > 0  # sample 0 alone
    assert summary["wer_best_of_n"] == 0.0 and summary["n_samples"] == 2
    best_rows = read_csv(out / "wer_rows_best_of_n.csv")
    assert len(best_rows) == 6 and all(r["errors"] == "0" for r in best_rows)


def test_resynth_takes_any_registered_codec(tmp_path, flite_corpus, capsys) -> None:
    """`valle-bench resynth --codec mel_rvq`: the codec comes from the registry, not EnCodec only."""
    import soundfile as sf
    import torch
    from lhotse import CutSet

    from valle.codec.mel import MelConfig
    from valle.codec.mel_rvq import MelRVQCodec, MelRVQConfig

    cuts_path, _ = flite_corpus
    cuts = CutSet.from_file(cuts_path)
    waves = [torch.from_numpy(c.resample(16000).load_audio()[0]).float() for c in cuts][:2]
    mel = MelConfig(n_fft=512, win_length=512, hop_length=160, n_mels=40)
    cfg = MelRVQConfig(mel=mel, num_codebooks=2, codebook_size=8, kmeans_iters=4,
                       griffin_lim_iters=2, max_fit_frames=1000)  # fmt: skip
    MelRVQCodec.fit(waves, cfg).save(tmp_path / "codec")
    out = tmp_path / "resynth"
    rc = bench.main(["resynth", "--cuts", str(cuts_path), "--codec", "mel_rvq", "--codec-path",
                     str(tmp_path / "codec"), "--out-dir", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    for cut in cuts:
        wave, sr = sf.read(out / f"{cut.id}.wav")
        assert sr == 16000 and abs(len(wave) - cut.duration * sr) <= 1
    rc = bench.main(["resynth", "--cuts", str(cuts_path), "--codec", "mel_rvq", "--codec-path",
                     str(tmp_path / "codec"), "--bandwidth", "6", "--out-dir", str(out)])  # fmt: skip
    assert rc != 0 and "bandwidth" in capsys.readouterr().err


class LengthASR:
    """Fake ASR that records the length of every wave it is given (and hears nothing)."""

    sample_rate = 16000

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def transcribe(self, waves, sample_rate, language=None):
        self.lengths += [len(w) for w in waves]
        return ["" for _ in waves]


@pytest.mark.parametrize("setting", ["cont", "cross"])
def test_after_prompt_scores_the_part_a_continuation_says(
    flite_corpus, monkeypatch, tmp_path, setting
):
    """Continuation reference rows (whole utterances) are cut after the 3 s prompt window, as
    the system's continuation-only output is; cross-sentence rows stay whole."""
    from lhotse import CutSet

    from valle.eval.protocols import read_protocol

    cuts_path, _ = flite_corpus
    asr = LengthASR()
    monkeypatch.setitem(asr_module.ASR_BACKENDS, "lengths", lambda path, device: asr)
    lst = tmp_path / f"{setting}.jsonl"
    assert bench.main(["protocol", "--cuts", str(cuts_path), "--setting", setting,
                       "--out", str(lst)]) == 0  # fmt: skip
    items = read_protocol(lst)
    assert items and all(i.prompt_duration == 3.0 for i in items)
    out = tmp_path / "gt"
    assert bench.main(["wer", "--audio-from-cuts", str(cuts_path), "--ref", str(lst),
                       "--ref-field", "target_text", "--after-prompt", "--asr", "lengths",
                       "--out-dir", str(out)]) == 0  # fmt: skip
    cuts = CutSet.from_file(cuts_path).to_eager()
    whole = [cuts[i.id].num_samples for i in items]
    cut = 3 * int(cuts[items[0].id].sampling_rate) if setting == "cont" else 0
    assert asr.lengths == [n - cut for n in whole]
    # scored against the words after the prompt (cont) or all of them (cross)
    summary = json.loads((out / "wer_summary.json").read_text())
    assert summary["deletions"] == summary["ref_len"] > 0
    full = sum(len(i.text.split()) for i in items)
    assert (summary["ref_len"] < full) if setting == "cont" else (summary["ref_len"] == full)


def test_after_prompt_needs_a_protocol_list(flite_corpus, fake_asr, tmp_path, capsys):
    cuts_path, _ = flite_corpus
    code = bench.main(["wer", "--audio-from-cuts", str(cuts_path), "--ref", str(cuts_path),
                       "--after-prompt", "--asr", "fake", "--out-dir", str(tmp_path)])  # fmt: skip
    assert code == 2 and "needs a protocol list" in capsys.readouterr().err


def test_after_prompt_rejects_a_wave_that_ends_inside_the_prompt():
    import numpy as np

    from valle.eval.output_lengths import reference_seconds
    from valle.eval.protocols import TestItem, after_prompt, target_offset

    item = TestItem("u", "cont", "s", "en", "a b c", "c", "r", 0.0, 4.0, "u", "r", 0.0, 3.0,
                    "a b", "durations")  # fmt: skip
    assert len(after_prompt(item, np.zeros(4 * 16000), 16000)) == 16000
    with pytest.raises(ValueError, match="ends inside"):
        after_prompt(item, np.zeros(2 * 16000), 16000)
    # the window's end is measured from the target's start (recording times in the list)
    later = dataclasses.replace(item, target_start=10.0, prompt_start=10.5)
    assert target_offset(later) == 3.5
    assert reference_seconds(later) == 0.5
    assert target_offset(dataclasses.replace(item, setting="cross")) == 0.0
