"""tools/convert_untrusted_checkpoint.py: explicit opt-in, safe output, unsafe entries listed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from valle.io.checkpoint import UntrustedCheckpointError, load_checkpoint

TOOL = Path(__file__).resolve().parents[2] / "tools" / "convert_untrusted_checkpoint.py"
spec = importlib.util.spec_from_file_location("convert_untrusted_checkpoint", TOOL)
conv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conv)


class Settings:  # a harmless custom object, as older scripts pickled (e.g. argparse results)
    def __init__(self) -> None:
        self.lr = 0.1


def _old_checkpoint(path: Path) -> Path:
    obj = {"state_dict": {"w": torch.ones(2)}, "valle_config": {"model": {}}, "args": Settings()}
    torch.save(obj, path)
    return path


def test_refuses_without_the_flag_and_converts_with_it(tmp_path, capsys) -> None:
    src = _old_checkpoint(tmp_path / "old.pt")
    with pytest.raises(UntrustedCheckpointError):
        load_checkpoint(src)
    dst = tmp_path / "new.pt"
    assert conv.main([str(src), str(dst)]) == 2
    assert "--i-trust-this-file" in capsys.readouterr().err and not dst.exists()
    assert conv.main([str(src), str(dst), "--i-trust-this-file"]) == 2  # unsafe entry listed
    assert "checkpoint['args']" in capsys.readouterr().err and not dst.exists()
    assert conv.main([str(src), str(dst), "--i-trust-this-file", "--drop-unsafe"]) == 0
    out = load_checkpoint(dst)
    assert set(out) == {"state_dict", "valle_config"}
    assert torch.equal(out["state_dict"]["w"], torch.ones(2))
