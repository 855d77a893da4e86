"""``valle-bench speed --variant valle2 --set ar.layout.group=G``: G frames per AR step, so the
same speech takes half the AR steps at G = 2 (tiny preset, CI-sized)."""

from __future__ import annotations

import csv
import json

import torch

from valle.bin.bench import main


def _run(tmp_path, group: int, *extra: str) -> tuple[dict, str, dict]:
    out, summary = tmp_path / f"g{group}.csv", tmp_path / f"g{group}.json"
    argv = ["speed", "--variant", "valle2", "--set", f"ar.layout.group={group}", "--sizes",
            "tiny", "--batch-sizes", "1", "--seconds", "0.4", "--prompt-seconds", "0.2",
            "--phonemes", "12", "--threads", "1", "--nocache-points", "2",
            "--nar-stages-timed", "1", "--out", str(out), "--summary", str(summary), *extra]  # fmt: skip
    assert main(argv) == 0
    (row,) = list(csv.DictReader(out.open()))
    (s,) = json.loads(summary.read_text())
    return row, str(out), s


def test_group_of_two_halves_the_ar_steps(tmp_path, capsys) -> None:
    torch.set_num_threads(1)
    one, _, s1 = _run(tmp_path, 1, "--train-steps", "0")
    printed_one = capsys.readouterr().out
    two, _, s2 = _run(tmp_path, 2, "--train-steps", "1", "--train-warmup", "0",
                      "--train-batch", "2", "--train-seconds", "0.4")  # fmt: skip
    printed_two = capsys.readouterr().out
    frames = round(0.4 * 75)  # 30 frames of speech at the default 75 frames/s
    assert (int(one["steps"]), int(one["frames_per_step"])) == (frames, 1)
    assert (int(two["steps"]), int(two["frames_per_step"])) == (frames // 2, 2)
    assert one["size"] == two["size"] == "valle2/tiny"
    assert "AR steps" in printed_one and f"{frames} AR steps of 1 frame(s)" in printed_one
    assert f"{frames // 2} AR steps of 2 frame(s)" in printed_two
    assert (s1["ar_steps"], s2["ar_steps"]) == (frames, frames // 2)
    assert s2["system"].startswith("valle2/tiny B=1")
    # the training measurement reads what valle2 asks of the data (its NAR's frame rate)
    assert float(two["train_tokens_per_s"]) > 0


def test_variant_options_are_for_random_models(tmp_path, capsys) -> None:
    assert main(["speed", "--variant", "nope", "--sizes", "tiny", "--batch-sizes", "1"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["speed", "--checkpoint", str(tmp_path / "m.pt"), "--variant", "valle2"]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_a_language_ar_is_timed_too(tmp_path) -> None:
    """VALL-E X's AR adds a language embedding to each acoustic input: the cached steps of
    the speed bench must carry language ids (stage 8 of the mini recipe had no speed
    columns for it)."""
    out, summary = tmp_path / "x.csv", tmp_path / "x.json"
    argv = ["speed", "--variant", "vallex", "--sizes", "tiny", "--batch-sizes", "1",
            "--seconds", "0.4", "--prompt-seconds", "0.2", "--phonemes", "12", "--threads", "1",
            "--nocache-points", "2", "--nar-stages-timed", "1", "--train-steps", "0",
            "--out", str(out), "--summary", str(summary)]  # fmt: skip
    assert main(argv) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert int(row["steps"]) == round(0.4 * 75) and float(row["ar_ms_step"]) > 0


def test_vallr_is_timed_and_merged_codes_halve_its_steps(tmp_path) -> None:
    """VALL-E R's AR reads [code, pointer, phoneme] steps and its NAR each frame's phoneme:
    the bench drives both through the model's own decoding (it failed on both before), and
    the merged-codes preset (rate 2) makes half the AR steps for the same speech, its NAR
    timed over the frames the steps make."""
    torch.set_num_threads(1)
    rows = {}
    for variant in ("vallr", "vallr_merged"):
        out = tmp_path / f"{variant}.csv"
        argv = ["speed", "--variant", variant, "--sizes", "tiny", "--batch-sizes", "1",
                "--seconds", "0.4", "--prompt-seconds", "0.2", "--phonemes", "12",
                "--threads", "1", "--nocache-points", "2", "--nar-stages-timed", "1",
                "--train-steps", "0", "--out", str(out)]  # fmt: skip
        assert main(argv) == 0
        (rows[variant],) = list(csv.DictReader(out.open()))
    frames = round(0.4 * 75)
    assert (int(rows["vallr"]["steps"]), int(rows["vallr"]["frames_per_step"])) == (frames, 1)
    merged = rows["vallr_merged"]
    assert (int(merged["steps"]), int(merged["frames_per_step"])) == (frames // 2, 2)
    assert float(merged["nar_s"]) > 0 and float(rows["vallr"]["nocache_ms_step"]) > 0


def test_cached_timing_of_a_pointer_ar_returns_its_codes() -> None:
    """The bench feeds back the pointer head's whole step (code, pointer, phoneme) and keeps
    the layout's part of it: T codes, each a real code (the pointer and phoneme columns do
    not leak into them). It raised before: the step needs [code, pointer, phoneme]."""
    from valle.eval.decode_timing import time_cached_ar
    from valle.testing.model import tiny_model

    model = tiny_model(seed=0, variant="vallr", text_vocab_size=20).eval()
    text = torch.randint(1, 20, (1, 6))
    prompt = torch.randint(0, model.ar.layout.codebook_size, (1, 5, 4))
    out = time_cached_ar(model.ar, text, torch.tensor([6]), prompt, torch.tensor([5]), 8)
    codes = out[3]
    assert codes.shape == (1, 8) and int(codes.max()) < model.ar.layout.codebook_size
