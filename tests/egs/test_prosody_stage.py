"""prepare.sh --prosody true (egs/mini and egs/libritts): RALL-E prosody tokens on the aligner's
cuts, in a data directory laid out as stages 0-4 and --align true leave it (made on the spot,
so the test takes seconds instead of running the corpus, codec and aligner stages)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from tests.align.conftest import tokenize_tiny

REPO = Path(__file__).resolve().parents[2]
SPLITS = ("train", "dev", "test")


def _prepared(root: Path, prefix: str, with_align: bool = True) -> Path:
    """A data dir after stage 4 (+ the aligner): split markers, summary, aligned cuts."""
    from valle.align.features import num_code_frames
    from valle.ar.pointer import uniform_durations
    from valle.data.tokenize import cut_phonemes

    data = root / "data"
    tok = data / "tokenized"
    tok.mkdir(parents=True)
    for marker in (f".{prefix}_text.done", f".{prefix}_split.done"):
        (tok / marker).touch()
    (tok / f"{prefix}_summary.txt").write_text("split hours speakers utterances\n")
    if not with_align:
        return data
    cuts, _ = tokenize_tiny(root / "corpus", speakers=3, utts=1)
    align = data / "align"
    align.mkdir()
    for split, cut in zip(SPLITS, cuts, strict=True):
        S, T = len(cut_phonemes(cut)), num_code_frames(cut)
        d = uniform_durations(torch.tensor([T]), torch.tensor([S]), S)[0].tolist()
        CutSet.from_cuts([cut.with_custom("durations", d)]).to_file(
            align / f"{prefix}_cuts_{split}.jsonl.gz"
        )
        (align / f".durations_{split}.done").touch()
    return data


def _run(recipe: str, data: Path) -> subprocess.CompletedProcess:
    cmd = ["bash", str(REPO / "egs" / recipe / "prepare.sh"), "--stage", "4", "--stop-stage", "4",
           "--data-dir", str(data), "--prosody", "true", "--chunk-size", "2"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("recipe", "prefix"), [("mini", "mini"), ("libritts", "libritts")])
def test_prosody_option_writes_tokens_for_every_split_and_skips_when_done(
    tmp_path, recipe: str, prefix: str
) -> None:
    data = _prepared(tmp_path, prefix)
    proc = _run(recipe, data)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for split in SPLITS:
        (cut,) = CutSet.from_file(data / "prosody" / f"{prefix}_cuts_{split}.jsonl.gz")
        durations = cut.custom["durations"]
        assert cut.custom["duration_tokens"] == [min(x, 32) for x in durations]
        pitch = cut.custom["pitch_tokens"]
        assert len(pitch) == len(durations) and any(p > 0 for p in pitch)  # tones are voiced
        assert (data / "prosody" / f".prosody_{split}.done").is_file()
    again = _run(recipe, data)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count(".done exists, skipping") == 4  # the split + 3 prosody markers


@pytest.mark.parametrize(("recipe", "prefix"), [("mini", "mini"), ("libritts", "libritts")])
def test_prosody_without_the_aligner_says_what_to_run(tmp_path, recipe: str, prefix: str) -> None:
    data = _prepared(tmp_path, prefix, with_align=False)
    proc = _run(recipe, data)
    assert proc.returncode != 0
    assert "durations_train.done not found" in proc.stdout
    assert "add --align true" in proc.stdout
    assert not (data / "prosody").exists()
