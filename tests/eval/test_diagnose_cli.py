"""``valle-bench diagnose`` on a tiny checkpoint and a tiny tokenized cut set."""

from __future__ import annotations

import json

import torch

from valle.bin import bench
from valle.config import to_dict
from valle.testing.model import tiny_model
from valle.text import SymbolTable
from valle.train.checkpoint import save_inference_checkpoint

PHONES = ["a", "b", "c", "d", "e"]  # the tokenized_cuts fixture's phonemes


def test_diagnose_command_prints_writes_json_and_images(tmp_path, capsys, tokenized_cuts) -> None:
    torch.set_num_threads(1)
    cuts = tokenized_cuts(tmp_path, 4)
    cuts_path = tmp_path / "dev_cuts.jsonl.gz"
    cuts.to_file(cuts_path)
    symbols = SymbolTable(["<pad>", *PHONES])
    model = tiny_model(seed=0, text_vocab_size=len(symbols), codebook_size=16, num_codebooks=2)
    ckpt = save_inference_checkpoint(
        tmp_path / "model.pt",
        model.state_dict(),
        {"model": to_dict(model.config)},
        step=1,
        symbols=symbols.symbols,
    )
    out = tmp_path / "diag" / "diagnose.json"
    args = ["diagnose", "--checkpoint", str(ckpt), "--cuts", str(cuts_path), "--max-cuts", "3",
            "--language", "en", "--json", str(out), "--images", "2"]  # fmt: skip
    assert bench.main(args) == 0
    printed = capsys.readouterr().out
    assert "text gap" in printed and "persistence baseline" in printed
    summary = json.loads(out.read_text())
    assert summary["utterances"] == 3
    assert {"ar", "stop", "attention", "nar", "free_running"} <= set(summary)
    assert summary["free_running"]["items"] == 3  # all longer than the 3 s prompt
    images = sorted((out.parent / "attention").glob("*.png"))
    assert len(images) == 2 and summary["attention_images"] == [str(p) for p in images]

    # no cuts in that language: a clear error
    assert bench.main(["diagnose", "--checkpoint", str(ckpt), "--cuts", str(cuts_path),
                       "--language", "ja"]) == 2  # fmt: skip
    assert "usable cuts" in capsys.readouterr().err

    # without a symbol table in the checkpoint: a clear error naming --tokens
    bare = save_inference_checkpoint(
        tmp_path / "bare.pt", model.state_dict(), {"model": to_dict(model.config)}, step=1
    )
    assert bench.main(["diagnose", "--checkpoint", str(bare), "--cuts", str(cuts_path)]) == 2
    assert "--tokens" in capsys.readouterr().err
