"""``valle-bench loops`` on a tiny model rigged to loop: greedy decoding repeats one code up
to the length cap, repetition-aware sampling (greedy first choice) ends every output."""

from __future__ import annotations

import json

import pytest
import torch

from valle.bin import bench
from valle.config import to_dict
from valle.eval.files import read_csv
from valle.eval.loops import LoopRow, format_loop_table, longest_run, loop_summary
from valle.testing.model import tiny_model
from valle.text import SymbolTable
from valle.train.checkpoint import save_inference_checkpoint

FRAME_SHIFT = 0.05  # the tokenized_cuts fixture: 20 frames per second; a run of more than 20 frames lasts over 1 s
PHONES = ["a", "b", "c", "d", "e"]
V, Q = 16, 2


def _looping_checkpoint(tmp_path, symbols: SymbolTable):
    """A valle2 model whose arg-max is always code 3 (EOS second, ~20 % of the mass)."""
    model = tiny_model(seed=0, variant="valle2", text_vocab_size=len(symbols), codebook_size=V,
                       num_codebooks=Q, max_len_ratio=10.0)  # fmt: skip
    with torch.no_grad():  # logits = the bias alone: the group prediction layer outputs 0
        model.ar.head.group.weight.zero_()
        model.ar.head.bias.zero_()
        model.ar.head.bias[3] = 10.0
        model.ar.head.bias[V] = 8.5  # EOS
    return save_inference_checkpoint(
        tmp_path / "model.pt",
        model.state_dict(),
        {"model": to_dict(model.config)},
        step=1,
        symbols=symbols.symbols,
        codec={"name": "test", "frame_rate": 1 / FRAME_SHIFT},
    )


def test_longest_run_and_summary() -> None:
    assert longest_run(torch.tensor([], dtype=torch.long)) == 0
    assert longest_run(torch.tensor([4])) == 1
    assert longest_run(torch.tensor([1, 1, 2, 2, 2, 1, 3, 3])) == 3
    rows = [
        LoopRow("a", "greedy", frames=40, limit=40, reference=20, longest_run=40, hit_cap=True),
        LoopRow("b", "greedy", frames=30, limit=60, reference=30, longest_run=21, hit_cap=False),
        LoopRow("c", "greedy", frames=10, limit=60, reference=10, longest_run=20, hit_cap=False),
        LoopRow("d", "greedy", frames=8, limit=60, reference=16, longest_run=3, hit_cap=False),
    ]
    s = loop_summary(rows, frame_rate=20.0, run_seconds=1.0)  # a loop: a run over 20 frames
    assert (s["items"], s["hit_cap"], s["long_run"], s["either"]) == (4, 0.25, 0.5, 0.5)
    assert s["longest_run_s"] == pytest.approx((40 + 21 + 20 + 3) / 4 / 20)
    assert s["length_ratio"] == pytest.approx((2 + 1 + 1 + 0.5) / 4)
    table = format_loop_table({"greedy": s, "ras": {"items": 0}})
    assert "run > 1 s" in table and "50.0%" in table and "25.0%" in table


def test_loops_command_greedy_loops_and_ras_does_not(tmp_path, capsys, tokenized_cuts) -> None:
    torch.set_num_threads(1)
    cuts_path = tmp_path / "test_cuts.jsonl.gz"
    tokenized_cuts(tmp_path, 5).to_file(cuts_path)
    symbols = SymbolTable(["<pad>", *PHONES])
    ckpt = _looping_checkpoint(tmp_path, symbols)
    out, rows_csv = tmp_path / "loops" / "loops.json", tmp_path / "loops" / "rows.csv"
    argv = ["loops", "--checkpoint", str(ckpt), "--cuts", str(cuts_path), "--sampler",
            "greedy,ras", "--json", str(out), "--rows", str(rows_csv), "--batch-size", "2"]  # fmt: skip
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "hit cap" in printed and "run > 1 s" in printed and "20 frames/s" in printed
    summary = json.loads(out.read_text())
    assert summary["frame_rate"] == 20.0 and "codec facts" in summary["frame_rate_from"]
    greedy, ras = summary["samplers"]["greedy"], summary["samplers"]["ras"]
    assert greedy["items"] == ras["items"] == 5
    # greedy: code 3 up to the bound, every time (runs far over 1 s)
    assert greedy["hit_cap"] == 1.0 and greedy["long_run"] == 1.0
    # RAS: after two 3s in the window the fallback samples, draws EOS, and the output ends
    assert ras["hit_cap"] == 0.0 and ras["either"] < 1.0
    rows = read_csv(rows_csv)
    assert len(rows) == 10
    for r in rows:
        if r["sampler"] == "greedy":
            assert int(r["frames"]) == int(r["limit"]) == int(r["longest_run"])
            assert int(r["frames"]) % 2 == 0  # valle2: 2 frames per AR step

    # a sampler that does not exist: a clear error
    assert bench.main(["loops", "--checkpoint", str(ckpt), "--cuts", str(cuts_path),
                       "--sampler", "beam"]) == 2  # fmt: skip
    assert "samplers must be among" in capsys.readouterr().err
