"""valle-bench speed on the tiny preset: columns, files, and the numbers it reports hang together."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from valle.bin.bench import main
from valle.eval.speed import SpeedSetup, build_random_model, matvec_floor_ms, measure_speed


def test_speed_subcommand_prints_the_expected_columns(tmp_path, capsys) -> None:
    out, summary = tmp_path / "speed.csv", tmp_path / "speed.json"
    rc = main(
        ["speed", "--sizes", "tiny", "--batch-sizes", "1", "--seconds", "0.4",
         "--prompt-seconds", "0.2", "--phonemes", "12", "--threads", "1",
         "--out", str(out), "--summary", str(summary)]
    )  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    for col in ("AR ms/step (cache)", "early 10%", "late 10%", "AR ms/step (no cache)",
                "speed-up", "matvec floor ms", "step/floor", "NAR s (7 stages)", "RTF",
                "peak MiB"):  # fmt: skip
        assert col in text, col
    assert "3 sequence lengths timed" in text and "peak RSS" in text
    (row,) = list(csv.DictReader(out.open()))
    assert row["size"] == "tiny" and int(row["batch"]) == 1 and int(row["steps"]) == 30
    assert float(row["ar_ms_step"]) > 0 and float(row["nocache_ms_step"]) > 0
    assert int(row["nar_stages_timed"]) == 7
    (s,) = json.loads(summary.read_text())
    assert s["system"].startswith("valle-tiny B=1") and s["rtf"] > 0


def test_bad_arguments_are_user_errors(capsys) -> None:
    assert main(["speed", "--sizes", "huge", "--batch-sizes", "1"]) == 2
    assert "huge" in capsys.readouterr().err
    assert main(["speed", "--sizes", "tiny", "--batch-sizes", "0"]) == 2
    assert "positive" in capsys.readouterr().err


def test_measured_row_is_consistent() -> None:
    torch.set_num_threads(1)
    setup = SpeedSetup(seconds=0.3, prompt_seconds=0.1, phonemes=8, nar_stages_timed=2)
    row = measure_speed("tiny", 2, setup)
    assert row.steps == round(0.3 * 75) and row.prompt_frames == round(0.1 * 75)
    assert row.speedup == pytest.approx(row.nocache_ms_step / row.ar_ms_step)
    assert row.step_over_floor == pytest.approx(row.ar_ms_step / row.floor_ms)
    assert row.nar_stages_timed == 2 and row.nar_s > 0
    total_s = row.prefill_ms / 1000 + row.ar_ms_step * (row.steps - 1) / 1000 + row.nar_s
    assert row.rtf == pytest.approx(total_s / (2 * 0.3), rel=1e-6)


def test_matvec_floor_grows_with_the_weights() -> None:
    torch.set_num_threads(1)
    small = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(2)])
    big = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(8)])
    assert matvec_floor_ms(big, reps=3) > matvec_floor_ms(small, reps=3)
    with pytest.raises(ValueError, match="no linear"):
        matvec_floor_ms(torch.nn.ReLU())


def test_random_model_has_the_benchmark_vocabulary() -> None:
    model = build_random_model("tiny", SpeedSetup())
    v = model.config.vocab
    assert (v.text_vocab_size, v.codebook_size, v.num_codebooks) == (120, 1024, 8)
    assert not model.training
