"""valle.io.atomic: the file mode follows the umask, failures keep the old file and leave no
temp file, the destination path always comes first, stale temp files are recognised."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from valle.io.atomic import (
    atomic_path,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    is_temp_name,
    remove_stale_temps,
)


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


WRITERS = {
    "text": lambda p: atomic_write_text(p, "hello\n"),
    "bytes": lambda p: atomic_write_bytes(p, b"\x00\x01"),
    "torch": lambda p: atomic_torch_save(p, {"w": torch.ones(2)}),
    "path": lambda p: _via_path(p),
}


def _via_path(p) -> None:
    with atomic_path(p, keep_suffix=True) as tmp:
        assert tmp.name.endswith(".tmp.txt") and tmp.parent == p.parent
        tmp.write_text("x")


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_mode_follows_the_umask(tmp_path, umask, kind, mask) -> None:
    """mkstemp made every file 0600 whatever the umask (#8.9)."""
    umask(mask)
    path = tmp_path / "out.txt"
    WRITERS[kind](path)
    assert _mode(path) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_valle_writers_follow_the_umask(tmp_path, umask) -> None:
    """The former copies (config YAML, symbol table, checkpoints, codec, waves) go through it."""
    import numpy as np

    from valle.config import atomic_write_text as config_write
    from valle.inference.wavfile import write_wav
    from valle.testing.codec import tiny_mel_rvq_codec
    from valle.text import SymbolTable
    from valle.train.checkpoint import save_inference_checkpoint

    umask(0o022)
    config_write(tmp_path / "config.yaml", "a: 1\n")
    SymbolTable(["<pad>", "a"]).to_file(tmp_path / "tokens.txt")
    save_inference_checkpoint(tmp_path / "model.pt", {"w": torch.ones(1)}, {"model": {}})
    tiny_mel_rvq_codec().save(tmp_path / "codec")
    write_wav(tmp_path / "out.wav", np.zeros(160, dtype=np.float32), 16000)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 6
    assert {p.name: _mode(p) for p in files} == {p.name: 0o644 for p in files}


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path) -> None:
    path = tmp_path / "table.csv"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_destination_comes_first(tmp_path) -> None:
    """Two former writers took (text, path) and (path, text); a swap is now a TypeError."""
    with pytest.raises(TypeError, match="path (comes )?first"):
        atomic_write_text("hello", tmp_path / "x.txt")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path (comes )?first"):
        atomic_torch_save({"w": torch.ones(1)}, tmp_path / "x.pt")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_stale_temps_are_recognised_and_removed(tmp_path) -> None:
    names = [
        ".step-00000004.ckpt.k3j_x9a1.tmp",  # mkstemp token of the former writers
        ".model.pt.0123abcd.tmp",  # this module's token
        ".cuts.jsonl.gz.0123abcd.tmp.jsonl.gz",  # keep_suffix
    ]
    keep = ["step-00000004.ckpt", ".done", "model.pt.tmp", "notes.tmp"]
    for n in names + keep:
        (tmp_path / n).write_text("x")
    assert all(is_temp_name(n) for n in names) and not any(is_temp_name(n) for n in keep)
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
