"""``valle-bench diagnose`` on a tiny checkpoint and a tiny tokenized cut set."""

from __future__ import annotations

import json

import numpy as np
import torch
from lhotse import CutSet, NumpyFilesWriter, SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from valle.bin import bench
from valle.config import to_dict
from valle.testing.model import tiny_model
from valle.text import SymbolTable
from valle.train.checkpoint import save_inference_checkpoint

FRAME_SHIFT = 0.05  # 20 frames per second
PHONES = ["a", "b", "c", "d", "e"]


def _tokenized_cuts(root, n: int = 4) -> CutSet:
    """Cuts carrying codes (T, 2) and phonemes, as the tokenize stage writes them."""
    rng = np.random.default_rng(0)
    cuts = []
    with NumpyFilesWriter(str(root / "codes")) as writer:
        for i in range(n):
            frames = 70 + 10 * i  # 3.5-5 s
            duration = frames * FRAME_SHIFT
            cut = dummy_cut(i, duration=duration, with_data=False)
            codes = rng.integers(0, 16, size=(frames, 2))
            arr = writer.store_array(cut.id, codes, frame_shift=FRAME_SHIFT, temporal_dim=0)
            sup = SupervisionSegment(
                id=cut.id, recording_id=cut.recording_id, start=0.0, duration=duration,
                text="x", language="en", speaker=f"spk{i % 2}",
                custom={"phonemes": [PHONES[(i + k) % 5] for k in range(4 + i)]},
            )  # fmt: skip
            cut = cut.with_custom("codes", arr)
            cut.supervisions = [sup]
            cuts.append(cut)
    return CutSet.from_cuts(cuts)


def test_diagnose_command_prints_writes_json_and_images(tmp_path, capsys) -> None:
    torch.set_num_threads(1)
    cuts = _tokenized_cuts(tmp_path)
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
