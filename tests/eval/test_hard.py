"""The hard-sentence test (valle/eval/hard.py): the shipped list, the bad-case counting on
hand-made transcripts, and the length-cap detection on a tiny model."""

from __future__ import annotations

import pytest

from valle.eval.hard import (
    HardSentence,
    format_hard_table,
    load_hard_sentences,
    score_hard_case,
    summarize_hard,
    synthesize_hard,
)

CAT = HardSentence("t1", "repeated", "The cat sat on the mat.")


def test_the_shipped_list_has_at_least_40_sentences_in_every_group() -> None:
    sentences = load_hard_sentences()
    assert len(sentences) >= 40
    groups = {s.category for s in sentences}
    assert {"repeated", "twister", "numbers", "short", "long"} <= groups
    for g in ("repeated", "twister", "numbers", "short", "long"):
        assert sum(s.category == g for s in sentences) >= 5, g
    assert max(len(s.text.split()) for s in sentences) >= 40  # very long
    assert min(len(s.text.split()) for s in sentences) == 1  # very short


def test_a_perfect_transcript_is_not_a_bad_case_and_numbers_are_normalised() -> None:
    case = score_hard_case(CAT, "the cat sat on the mat")
    assert (case.errors, case.skipped, case.repeated, case.bad) == (0, 0, 0, False)
    num = score_hard_case(HardSentence("n", "numbers", "Room 404 is on floor 17."),
                          "room four hundred four is on floor seventeen")  # fmt: skip
    assert num.errors == 0 and not num.bad


def test_a_skipped_word_is_a_bad_case() -> None:
    case = score_hard_case(CAT, "the cat sat on mat")
    assert case.skipped == 1 and case.repeated == 0 and case.reasons == ["skipped"]


def test_a_repeated_word_is_a_bad_case_but_another_insertion_is_not() -> None:
    rep = score_hard_case(CAT, "the cat cat sat on the mat")
    assert rep.repeated == 1 and rep.skipped == 0 and rep.reasons == ["repeated"]
    stutter = score_hard_case(CAT, "the cat sat sat sat on the mat")
    assert stutter.repeated == 2
    other = score_hard_case(CAT, "the black cat sat on the mat")
    assert other.repeated == 0 and other.errors == 1 and not other.bad


def test_wer_above_half_and_the_length_cap_are_bad_cases() -> None:
    garbage = score_hard_case(CAT, "a dog ran in a park")  # 6 substitutions of 6
    assert garbage.wer > 0.5 and "wer" in garbage.reasons
    half = score_hard_case(CAT, "the cat ran in a mat")  # 3 of 6: exactly 50%, not above
    assert half.wer == 0.5 and half.reasons == []
    capped = score_hard_case(CAT, "the cat sat on the mat", hit_cap=True)
    assert capped.reasons == ["cap"]
    empty = score_hard_case(CAT, "")
    assert empty.skipped == 6 and empty.wer == 1.0 and set(empty.reasons) == {"wer", "skipped"}


def test_the_summary_counts_shares_overall_and_per_group() -> None:
    short = HardSentence("s1", "short", "Yes.")
    cases = [
        score_hard_case(CAT, "the cat sat on the mat"),  # good
        score_hard_case(CAT, "the cat cat sat on the mat"),  # repeated
        score_hard_case(short, "yes", hit_cap=True),  # cap
        score_hard_case(short, "no"),  # WER 100%
    ]
    s = summarize_hard(cases)
    assert s["sentences"] == 4 and s["bad_share"] == 0.75
    assert s["repeated_share"] == 0.25 and s["cap_share"] == 0.25
    assert s["wer_over_50_share"] == 0.25 and s["skipped_share"] == 0.0
    assert s["wer"] == pytest.approx(2 / 14)  # 1 insertion + 1 substitution over 6 + 6 + 1 + 1
    assert s["by_category"]["short"]["bad_share"] == 1.0
    assert s["by_category"]["repeated"]["bad_share"] == 0.5
    assert s["bad_ids"] == ["t1", "s1", "s1"]
    table = format_hard_table(s, "ralle")
    assert table.count("| ralle |") == 3 and "| all |" in table


def test_synthesis_reports_when_a_sentence_hits_the_length_cap() -> None:
    from valle.inference import Synthesizer
    from valle.testing.codec import synthetic_waves, tiny_mel_rvq_codec
    from valle.testing.model import tiny_model
    from valle.text import SymbolTable, tokenize_text

    sentences = [HardSentence("a", "short", "She sells sea shells.")]
    prompt_text = "The quick brown fox."
    symbols = SymbolTable.build([tokenize_text(t, "en") for t in (sentences[0].text, prompt_text)])
    codec = tiny_mel_rvq_codec(num_codebooks=4, codebook_size=16)
    model = tiny_model(seed=1, variant="ralle", text_vocab_size=len(symbols))
    prompt = synthetic_waves([codec.sample_rate], codec.sample_rate, seed=3)[0].numpy()
    free = Synthesizer(model, symbols, codec, max_len_ratio=50.0)  # D <= 6 frames per phoneme
    capped = Synthesizer(model, symbols, codec, max_len_ratio=0.3)
    ((w1, sr, hit1),) = synthesize_hard(free, sentences, prompt, prompt_text, progress=False)
    ((w2, _, hit2),) = synthesize_hard(capped, sentences, prompt, prompt_text, progress=False)
    assert sr == codec.sample_rate and len(w1) > len(w2) > 0
    assert hit1 is False and hit2 is True


def _summary(system: str, wer: float) -> dict:
    cases = [score_hard_case(CAT, "the cat sat on the mat" if wer == 0 else "a dog")]
    return {**summarize_hard(cases), "system": system}


def test_compare_puts_every_systems_rows_of_a_group_together() -> None:
    from valle.eval.hard import format_hard_tables

    table = format_hard_tables([_summary("valle", 1.0), _summary("ralle", 0.0)]).splitlines()
    rows = [line.split(" | ")[:2] for line in table[2:]]
    assert rows == [["| valle", "all"], ["| ralle", "all"],
                    ["| valle", "repeated"], ["| ralle", "repeated"]]  # fmt: skip
    assert " | 0.0 | " in table[3] and " | 100.0 | " in table[2]


def test_the_cli_compares_summaries_and_says_which_is_missing(tmp_path, capsys) -> None:
    import json

    from valle.bin.hard import main

    for name, wer in (("valle", 1.0), ("ralle", 0.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "hard_summary.json").write_text(json.dumps(_summary(name, wer)))
    out = tmp_path / "table.md"
    assert main(["--compare", str(tmp_path / "valle"), str(tmp_path / "ralle"),
                 "--out", str(out)]) == 0  # fmt: skip
    assert out.read_text().count("| all |") == 2
    assert main(["--compare", str(tmp_path / "nowhere")]) == 1
    assert "run valle-hard with --out-dir" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out-dir", "x"], "--checkpoint and --out-dir are required"),
        (["--checkpoint", "m.pt", "--out-dir", "x"], "either as --prompt-wav"),
        (["--checkpoint", "m.pt", "--out-dir", "x", "--prompt-wav", "a.wav"], "needs --prompt-text"),
        (["--checkpoint", "m.pt", "--out-dir", "x", "--prompt-list", "l.jsonl"], "needs --cuts"),
        (["--checkpoint", "m.pt", "--out-dir", "x", "--prompt-list", "l.jsonl", "--cuts", "c",
          "--prompt-wav", "a.wav", "--prompt-text", "t"], "either as --prompt-wav"),  # fmt: skip
    ],
)
def test_the_cli_asks_for_exactly_one_voice(args, message, capsys) -> None:
    from valle.bin.hard import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_the_voice_can_be_a_protocol_items_prompt(tmp_path) -> None:
    import soundfile as sf
    from lhotse import CutSet, Recording, SupervisionSegment

    from valle.bin.hard import prompt_from_list
    from valle.eval.protocols import TestItem, write_protocol
    from valle.testing.codec import synthetic_waves

    sr = 16000
    wave = synthetic_waves([4 * sr], sr, seed=1)[0].numpy()
    sf.write(str(tmp_path / "u1.wav"), wave, sr)
    rec = Recording.from_file(tmp_path / "u1.wav", recording_id="u1")
    sup = SupervisionSegment("u1", "u1", 0.0, rec.duration, text="one two three", speaker="s")
    cut = rec.to_cut()
    cut.supervisions = [sup]
    CutSet.from_cuts([cut]).to_file(tmp_path / "cuts.jsonl.gz")
    common = dict(setting="cross", speaker="s", language="en", text="x", target_text="x",
                  recording_id="u1", target_start=0.0, target_duration=4.0, prompt_cut_id="u1",
                  prompt_recording_id="u1", prompt_start=1.0, prompt_duration=3.0,
                  prompt_text_source="alignment")  # fmt: skip
    items = [TestItem(id="a", prompt_text="two three", **common),
             TestItem(id="b", prompt_text="three", **common)]  # fmt: skip
    write_protocol(items, tmp_path / "list.jsonl")
    out = tmp_path / "hard"
    wav, text = prompt_from_list(tmp_path / "list.jsonl", tmp_path / "cuts.jsonl.gz", None, out)
    assert text == "two three" and (out / "prompt.txt").read_text() == "two three\n"
    got, got_sr = sf.read(str(wav))
    assert got_sr == sr and len(got) == 3 * sr
    assert got[:100] == pytest.approx(wave[sr : sr + 100], abs=1e-4)  # cut from 1 s on
    _, text_b = prompt_from_list(tmp_path / "list.jsonl", tmp_path / "cuts.jsonl.gz", "b", out)
    assert text_b == "three"
    with pytest.raises(ValueError, match="no item 'zzz'"):
        prompt_from_list(tmp_path / "list.jsonl", tmp_path / "cuts.jsonl.gz", "zzz", out)
