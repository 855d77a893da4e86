"""The ceiling diagnostic: codec codebook prefixes and the ground-truth first codebook completed
by the model's NAR, written as waves and scored by a (fake) ASR into a table."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from valle.eval import asr as asr_module
from valle.eval.audio import load_wave
from valle.eval.ceiling import (
    NAR_SYSTEM,
    ceiling_waves,
    format_table,
    parse_prefixes,
    score_systems,
)
from valle.eval.protocols import TestItem, write_protocol
from valle.testing.codec import synthetic_waves, tiny_encodec_codec
from valle.testing.model import tiny_model
from valle.text import SymbolTable, tokenize_text

SR = 16000
TEXTS = ["the quick brown fox", "a lazy dog sleeps", "birds sing in spring"]


class DropLastWordASR:
    """Fake ASR: the reference of the wave's length (every system keeps the ground truth's
    length) without its last word, so each item has one error in four words."""

    def __init__(self, texts_by_samples: dict[int, str]) -> None:
        self.texts = texts_by_samples

    def transcribe(self, waves, sample_rate, language=None):
        return [" ".join(self.texts[len(w)].split()[:-1]) for w in waves]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three 0.5-0.7 s synthetic utterances as cuts, a cross-sentence list over them, a tiny
    codec (4 codebooks) and a tiny random VALL-E that knows their phonemes."""
    from lhotse import CutSet, Recording, SupervisionSegment

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ceiling")
    cuts, lengths = [], [8000, 9600, 11200]
    for i, (wave, text) in enumerate(zip(synthetic_waves(lengths, SR), TEXTS, strict=True)):
        path = root / f"u{i}.wav"
        sf.write(path, wave.numpy(), SR)
        cut = Recording.from_file(path, recording_id=f"u{i}").to_cut()
        cut.supervisions = [SupervisionSegment(
            id=cut.id, recording_id=cut.recording_id, start=0.0, duration=cut.duration,
            text=text, language="en", speaker="s",
        )]  # fmt: skip
        cuts.append(cut)
    cut_set = CutSet.from_cuts(cuts)
    items = [
        TestItem(id=c.id, setting="cross", speaker="s", language="en", text=t, target_text=t,
                 recording_id=c.recording_id, target_start=0.0, target_duration=c.duration,
                 prompt_cut_id=p.id, prompt_recording_id=p.recording_id, prompt_start=0.0,
                 prompt_duration=0.4, prompt_text=pt.split()[0], prompt_text_source="alignment")
        for c, t, p, pt in zip(cuts, TEXTS, cuts[1:] + cuts[:1], TEXTS[1:] + TEXTS[:1],
                               strict=True)
    ]  # fmt: skip
    symbols = SymbolTable.build([tokenize_text(t, "en") for t in TEXTS])
    codec = tiny_encodec_codec(num_codebooks=4, codebook_size=16)
    return root, cut_set, items, symbols, codec, dict(zip(lengths, TEXTS, strict=True))


def _synth(corpus, **overrides):
    from valle.inference import Synthesizer

    _, _, _, symbols, codec, _ = corpus
    model = tiny_model(seed=0, text_vocab_size=len(symbols), codebook_size=16, num_codebooks=4,
                       **overrides).eval()  # fmt: skip
    return Synthesizer(model, symbols, codec, max_text_tokens=None)


def test_prefixes_parse_and_check_their_range() -> None:
    assert parse_prefixes("1,2,4,all", 8) == [1, 2, 4, 8]
    assert parse_prefixes("all,1,1", 4) == [1, 4]
    with pytest.raises(ValueError, match="not in 1..4"):
        parse_prefixes("1,8", 4)


def test_waves_for_every_system_and_a_table_of_their_wer(corpus, tmp_path, monkeypatch) -> None:
    _, cuts, items, _, codec, texts = corpus
    synth = _synth(corpus)
    decoded, decode = [], codec.decode
    monkeypatch.setattr(codec, "decode", lambda codes: decoded.append(codes[0]) or decode(codes))
    systems = ceiling_waves(synth, items, cuts, tmp_path, [1, 2, 4])
    assert [s.name for s in systems] == ["codec_q1", "codec_q2", "codec_q4", NAR_SYSTEM]
    for s in systems:
        assert s.refused is None and s.ids == [i.id for i in items]
        for item, n in zip(items, texts, strict=True):
            wave, sr = load_wave(tmp_path / s.name / f"{item.id}.wav")
            assert sr == codec.sample_rate and len(wave) == n  # as long as the ground truth
    # per item: the first 1, 2, 4 codebooks of the ground truth, then the NAR's completion of
    # its first codebook (all 4; the random NAR does not reproduce codebooks 2..4)
    assert [c.shape[1] for c in decoded] == [1, 2, 4, 4] * 3
    gt, nar = decoded[2], decoded[3]
    assert torch.equal(nar[:, 0], gt[:, 0]) and not torch.equal(nar, gt)
    score_systems(systems, items, DropLastWordASR(texts), "en", "fake")
    assert all(s.wer == pytest.approx(0.25) for s in systems)  # one word in four dropped
    summary = json.loads((tmp_path / NAR_SYSTEM / "wer_summary.json").read_text())
    assert summary["system"] == NAR_SYSTEM and summary["wer"] == pytest.approx(0.25)
    table = format_table(systems)
    assert "| codec_q1 | 25.0% | 3 |" in table and f"| {NAR_SYSTEM} | 25.0% | 3 |" in table


def test_nar_completion_uses_the_ground_truth_first_codebook(corpus, tmp_path) -> None:
    """The NAR gets exactly the codec's first codebook of the target's ground truth."""
    _, cuts, items, _, codec, _ = corpus
    synth = _synth(corpus)
    seen = []
    generate = synth.model.nar.generate

    def spy(inputs, first, lens, **kwargs):
        seen.append(first.clone())
        return generate(inputs, first, lens, **kwargs)

    synth.model.nar.generate = spy
    ceiling_waves(synth, items[:1], cuts, tmp_path, [4])
    wave = torch.from_numpy(cuts[items[0].id].load_audio()[0])
    (codes,) = codec.encode([wave])
    assert len(seen) == 1 and torch.equal(seen[0][0], codes[:, 0].long())


def test_a_model_without_nar_is_refused_for_that_row_only(corpus, tmp_path) -> None:
    _, cuts, items, _, _, texts = corpus
    systems = ceiling_waves(_synth(corpus, overrides=["nar=null"]), items, cuts, tmp_path, [1])
    assert systems[-1].name == NAR_SYSTEM and "has no NAR" in systems[-1].refused
    score_systems(systems, items, DropLastWordASR(texts), "en")
    assert systems[0].wer == pytest.approx(0.25) and systems[-1].wer is None
    assert "refused: " in format_table(systems)


def test_ceiling_command(corpus, tmp_path, monkeypatch, capsys) -> None:
    from valle.bin import bench
    from valle.config import to_dict
    from valle.train.checkpoint import save_inference_checkpoint

    root, cuts, items, symbols, codec, texts = corpus
    codec_dir = tmp_path / "codec"
    codec.model.save_pretrained(codec_dir)
    model = _synth(corpus).model
    ckpt = save_inference_checkpoint(tmp_path / "model.pt", model.state_dict(),
                                     {"model": to_dict(model.config)}, step=1,
                                     symbols=symbols.symbols)  # fmt: skip
    lst = write_protocol(items, tmp_path / "cross_en.jsonl")
    cuts_path = tmp_path / "cuts.jsonl.gz"
    cuts.to_file(cuts_path)
    monkeypatch.setitem(
        asr_module.ASR_BACKENDS, "fake", lambda path, device: DropLastWordASR(texts)
    )
    out = tmp_path / "ceiling"
    args = ["ceiling", "--checkpoint", str(ckpt), "--list", str(lst), "--cuts", str(cuts_path),
            "--codec-dir", str(codec_dir), "--asr", "fake", "--out-dir", str(out),
            "--max-items", "2"]  # fmt: skip
    assert bench.main(args) == 0
    printed = capsys.readouterr().out
    for name in ("codec_q1", "codec_q2", "codec_q4", NAR_SYSTEM):
        assert f"| {name} | 25.0% | 2 |" in printed, printed
    rows = json.loads((out / "ceiling.json").read_text())["systems"]
    assert [r["system"] for r in rows] == ["codec_q1", "codec_q2", "codec_q4", NAR_SYSTEM]
    assert sorted(p.name for p in (out / "codec_q2").glob("*.wav")) == ["u0.wav", "u1.wav"]


def test_an_aligned_nar_that_needs_phoneme_ids_is_refused_with_its_reason(corpus, tmp_path):
    from valle.inference import Synthesizer

    _, cuts, items, symbols, codec, _ = corpus
    model = tiny_model(seed=0, variant="vallr", text_vocab_size=len(symbols), codebook_size=16,
                       num_codebooks=4).eval()  # fmt: skip
    synth = Synthesizer(model, symbols, codec, max_text_tokens=None)
    systems = ceiling_waves(synth, items[:1], cuts, tmp_path, [1])
    assert systems[0].ids == [items[0].id]
    assert "PhonemeAlignedNAR" in systems[-1].refused and "phoneme ids" in systems[-1].refused
    assert systems[-1].ids == [] and not (tmp_path / NAR_SYSTEM).exists()


def test_a_model_whose_wave_maker_makes_frames_is_refused(tmp_path) -> None:
    """The ceiling asks the synthesizer's codec whether its "codes" are continuous frames
    (the wave maker's declared ``continuous``), not the model whether it has an attribute
    named ``wave_maker``: any mel model's wave maker is refused before anything is written."""
    from types import SimpleNamespace

    class FrameWaveMaker:  # a wave maker of another name, without a model.wave_maker
        continuous = True
        sample_rate = 16000

    synth = SimpleNamespace(model=torch.nn.Linear(1, 1), codec=FrameWaveMaker(), device="cpu")
    with pytest.raises(ValueError, match="needs a codec model .* makes mel frames"):
        ceiling_waves(synth, [], None, tmp_path, [1])
    assert not any(tmp_path.iterdir())
