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


# ------------------------------------------------------------------ training throughput, checkpoints
def test_training_throughput_is_positive_and_leaves_the_model_alone() -> None:
    import math

    from valle.eval.speed import TrainSetup, measure_train_speed
    from valle.testing.model import tiny_model

    torch.set_num_threads(1)
    model = tiny_model(seed=0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    setup = TrainSetup(batch=2, seconds=0.4, prompt_seconds=0.1, phonemes=6, steps=2, warmup=1)
    tr = measure_train_speed(model, setup, frame_rate=50.0)
    assert (tr.batch, tr.frames, tr.text_tokens, tr.steps) == (2, 20, 6, 2)
    assert math.isfinite(tr.tokens_per_s) and tr.tokens_per_s > 0
    assert tr.tokens_per_s == pytest.approx(2 * 20 / (tr.ms_step / 1000))
    assert math.isfinite(tr.peak_mem_mb) and tr.peak_mem_mb >= 0 and tr.mem_kind
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="steps >= 1"):
        measure_train_speed(model, TrainSetup(steps=0), frame_rate=50.0)


def _tiny_checkpoint(tmp_path):
    from valle.config import to_dict
    from valle.testing.model import tiny_model
    from valle.train.checkpoint import save_inference_checkpoint

    model = tiny_model(seed=0, text_vocab_size=12, codebook_size=16, num_codebooks=3)
    ckpt = tmp_path / "exp" / "nar" / "model.pt"
    save_inference_checkpoint(ckpt, model.state_dict(), {"model": to_dict(model.config)}, step=7)
    codec_dir = tmp_path / "tokenized"
    codec_dir.mkdir()
    (codec_dir / "codec.json").write_text(json.dumps({"name": "mel_rvq", "frame_rate": 40.0}))
    return ckpt, codec_dir


def test_speed_of_a_checkpoint_writes_a_named_summary(tmp_path, capsys) -> None:
    ckpt, codec_dir = _tiny_checkpoint(tmp_path)
    summary, out = tmp_path / "speed.json", tmp_path / "speed.csv"
    rc = main(
        ["speed", "--checkpoint", str(ckpt), "--codec-dir", str(codec_dir), "--system",
         "valle (tiny)", "--batch-sizes", "1,2", "--seconds", "0.5", "--prompt-seconds", "0.25",
         "--phonemes", "10", "--threads", "1", "--nocache-points", "2", "--train-steps", "2",
         "--train-batch", "2", "--train-seconds", "0.5", "--summary", str(summary),
         "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "train tokens/s" in text and "NAR s" in text and "training: 2 timed AdamW steps" in text
    first, second = json.loads(summary.read_text())
    assert first["system"] == "valle (tiny)" and second["system"] == "valle (tiny) B=2"
    assert first["batch"] == 1 and first["model"] == "nar/model.pt"
    assert first["ar_steps"] == 20  # 0.5 s at the codec's 40 frames/s, not the default 75
    assert first["train"]["frames"] == 20 and first["train"]["batch"] == 2
    for s in (first, second):
        assert s["rtf"] > 0 and s["ar_ms_per_step"] > 0 and s["train_tokens_per_s"] > 0
        assert s["peak_memory_mb"] >= 0 and s["train_peak_memory_mb"] >= 0
    rows = list(csv.DictReader(out.open()))
    assert [int(r["batch"]) for r in rows] == [1, 2]
    assert int(rows[0]["nar_stages_timed"]) == 2  # Q - 1 of the checkpoint's 3 codebooks


def test_speed_without_training_leaves_the_train_columns_empty(tmp_path, capsys) -> None:
    ckpt, _ = _tiny_checkpoint(tmp_path)
    summary = tmp_path / "speed.json"
    rc = main(
        ["speed", "--checkpoint", str(ckpt), "--frame-rate", "20", "--batch-sizes", "1",
         "--seconds", "0.5", "--prompt-seconds", "0.25", "--phonemes", "6", "--threads", "1",
         "--nocache-points", "1", "--train-steps", "0", "--summary", str(summary)]
    )  # fmt: skip
    assert rc == 0
    (s,) = json.loads(summary.read_text())
    assert s["ar_steps"] == 10 and s["train_tokens_per_s"] is None and "train" not in s
    assert main(["speed", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_puts_speed_columns_in_the_model_row(tmp_path) -> None:
    from valle.eval.files import read_csv
    from valle.eval.report import ResultsTable, load_summaries

    (tmp_path / "q.json").write_text(json.dumps([
        {"system": "ground truth", "wer": 0.02, "sim_o": 0.8, "sim_r": 0.7},
        {"system": "valle (tiny)", "wer": 0.5, "sim_o": 0.3, "sim_r": 0.2},
    ]))  # fmt: skip
    speed = {"system": "valle (tiny)", "rtf": 0.25, "ar_ms_per_step": 1.5,
             "train_tokens_per_s": 4321.0, "peak_memory_mb": 3.0, "train_peak_memory_mb": 512.0,
             "batch": 1, "device": "cpu"}  # fmt: skip
    (tmp_path / "speed.json").write_text(json.dumps([speed]))
    table = ResultsTable.from_summaries(
        load_summaries([tmp_path / "q.json", tmp_path / "speed.json"])
    )
    md = table.to_markdown().splitlines()
    assert md[0].endswith(
        "| RTF | AR ms/step | train tokens/s | peak mem (GB) | train peak mem (GB) |"
    )
    assert md[2] == "| ground truth | 2.00 | 0.800 | 0.700 | - | - | - | - | - |"
    assert (
        md[3] == "| valle (tiny) | 50.00 | 0.300 | 0.200 | 0.250 | 1.50 | 4,321 | 0.0029 | 0.50 |"
    )
    rows = {r["system"]: r for r in read_csv(table.to_csv(tmp_path / "t.csv"))}
    assert float(rows["valle (tiny)"]["train_tokens_per_s"]) == pytest.approx(4321.0)
    assert float(rows["valle (tiny)"]["peak_memory_gb"]) == pytest.approx(3.0 / 1024)
    assert rows["ground truth"]["rtf"] == "" and rows["ground truth"]["train_tokens_per_s"] == ""
