"""Results tables: merging summaries, CSV / markdown / PNG outputs."""

from __future__ import annotations

import json

import pytest

from valle.eval.files import read_csv
from valle.eval.report import ResultsTable, load_summaries

SUMMARIES = [
    {"system": "ground truth", "metric": "WER", "error_rate": 0.0213, "utterances": 40},
    {"system": "ground truth", "sim_o": 0.771, "sim_r": None},
    {"system": "codec", "wer": 0.025, "sim_o": 0.70, "sim_r": 0.74},
    {"system": "valle", "wer": 0.0612, "sim_o": 0.512, "sim_r": 0.55},
]


def test_markdown_rows_and_columns():
    md = ResultsTable.from_summaries(SUMMARIES).to_markdown().splitlines()
    assert md[0] == "| system | WER (%) | SIM-o | SIM-r |"
    assert md[2] == "| ground truth | 2.13 | 0.771 | - |"
    assert md[3] == "| codec | 2.50 | 0.700 | 0.740 |"
    assert md[4] == "| valle | 6.12 | 0.512 | 0.550 |"


def test_speed_columns_only_when_given():
    speed = [
        {
            "system": "valle",
            "rtf": 0.42,
            "ar_ms_per_step": 11.5,
            "peak_memory_mb": 2048,
            "train_tokens_per_s": 12345.6,
        }
    ]
    table = ResultsTable.from_summaries(SUMMARIES + speed)
    headers = [c.header for c in table.columns]
    assert headers[-4:] == ["RTF", "AR ms/step", "train tokens/s", "peak mem (GB)"]
    assert "| valle | 6.12 | 0.512 | 0.550 | 0.420 | 11.50 | 12,346 | 2.00 |" in table.to_markdown()
    assert "| codec | 2.50 | 0.700 | 0.740 | - | - | - | - |" in table.to_markdown()


def test_write_all(tmp_path):
    files = []
    for k, s in enumerate(SUMMARIES):
        files.append(tmp_path / f"s{k}.json")
        files[-1].write_text(json.dumps(s))
    (tmp_path / "list.json").write_text(json.dumps([{"system": "x", "wer": 0.5}]))
    table = ResultsTable.from_summaries(load_summaries([*files, tmp_path / "list.json"]))
    paths = table.write_all(tmp_path / "out" / "results")
    rows = read_csv(paths["csv"])
    assert [r["system"] for r in rows] == ["ground truth", "codec", "valle", "x"]
    assert float(rows[2]["wer_percent"]) == pytest.approx(6.12)
    assert rows[0]["sim_r"] == ""
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["md"].read_text() == table.to_markdown()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_bad_summaries():
    with pytest.raises(ValueError, match="system"):
        ResultsTable.from_summaries([{"wer": 0.1}])
    with pytest.raises(ValueError, match="two values"):
        ResultsTable.from_summaries([{"system": "a", "wer": 0.1}, {"system": "a", "wer": 0.2}])


def test_best_of_n_columns_only_when_given():
    table = ResultsTable.from_summaries(
        SUMMARIES + [{"system": "valle", "wer_best_of_n": 0.031, "sim_o_best_of_n": 0.6}]
    )
    md = table.to_markdown()
    assert "| WER best-of-N (%) | SIM-o best-of-N |" in md.splitlines()[0] + " |"
    assert "| valle | 6.12 | 0.512 | 0.550 | 3.10 | 0.600 |" in md
    assert "wer_best_of_n" not in [c.key for c in ResultsTable.from_summaries(SUMMARIES).columns]
