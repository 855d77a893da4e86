"""tools/bench_train_step.py (run by tools/bench_base_training.sh): one JSON line per run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "bench_train_step.py"
spec = importlib.util.spec_from_file_location("bench_train_step", TOOL)
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

TINY = ["--size", "tiny", "--batch", "2", "--seconds", "0.4", "--prompt-seconds", "0.1",
        "--phonemes", "6", "--threads", "1", "--steps", "1", "--warmup", "0"]  # fmt: skip


def test_one_step_prints_time_and_peak_rss(capsys) -> None:
    before = torch.get_num_threads()
    try:
        assert bench.main([*TINY, "--checkpointing", "--label", "x",
                           "--set", "ar.backbone.attention_dropout=0"]) == 0  # fmt: skip
    finally:
        torch.set_num_threads(before)
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["label"] == "x" and row["batch"] == 2 and row["checkpointing"]
    assert row["mean_step_s"] > 0 and row["peak_rss_gib"] > 0 and len(row["step_s"]) == 1
    assert Path(row["valle"]).name == "valle"  # where the measured package came from


def test_the_rss_guard_stops_the_process_with_status_3() -> None:
    proc = subprocess.run(
        [sys.executable, str(TOOL), *TINY, "--max-rss-gib", "0.05"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == bench.OVER_LIMIT, proc.stderr[-500:]
    assert "max-rss-gib" in proc.stderr
