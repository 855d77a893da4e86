"""tools/average_checkpoints.py: elementwise mean, config checks, selection of the last N."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from valle.train.checkpoint import (
    CheckpointMismatchError,
    atomic_torch_save,
    save_inference_checkpoint,
    step_checkpoint_path,
)

TOOL = Path(__file__).resolve().parents[2] / "tools" / "average_checkpoints.py"
spec = importlib.util.spec_from_file_location("average_checkpoints", TOOL)
avg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(avg)

CONFIG = {"model": {"variant": "valle", "ar": {"num_layers": 2}}, "train": {"lr": 1e-3}}


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(3, 4, generator=g),
        "b": torch.randn(4, generator=g).half(),
        "count": torch.tensor(seed, dtype=torch.long),
    }


def test_mean_of_two_checkpoints(tmp_path):
    a, b = _state(1), _state(2)
    save_inference_checkpoint(tmp_path / "a.pt", a, CONFIG, step=1)
    # the second one in the full (Lightning) format: weights under "model."
    atomic_torch_save(
        tmp_path / "b.ckpt",
        {
            "state_dict": {f"model.{k}": v for k, v in b.items()},
            "valle_config": CONFIG,
            "optimizer_states": [],
            "symbols": ["<pad>", "a"],
            "codec": {"name": "fake"},
        },
    )
    assert (
        avg.main(
            [str(tmp_path / "a.pt"), str(tmp_path / "b.ckpt"), "--output", str(tmp_path / "avg.pt")]
        )
        == 0
    )
    out = torch.load(tmp_path / "avg.pt", weights_only=True)
    assert out["valle_config"] == CONFIG and out["format"] == "valle-inference"
    torch.testing.assert_close(out["state_dict"]["w"], (a["w"] + b["w"]) / 2)
    assert out["state_dict"]["b"].dtype == torch.float16
    torch.testing.assert_close(
        out["state_dict"]["b"], ((a["b"].double() + b["b"].double()) / 2).half()
    )
    assert int(out["state_dict"]["count"]) == 2  # integer counters come from the last one
    assert out["averaged_from"][0].endswith("a.pt")
    assert out["symbols"] == ["<pad>", "a"] and out["codec"] == {"name": "fake"}


def test_mismatched_configs_or_shapes_are_refused(tmp_path):
    save_inference_checkpoint(tmp_path / "a.pt", _state(1), CONFIG)
    other = {**CONFIG, "model": {"variant": "valle", "ar": {"num_layers": 3}}}
    save_inference_checkpoint(tmp_path / "b.pt", _state(2), other)
    with pytest.raises(CheckpointMismatchError, match="num_layers"):
        avg.average_to([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "x.pt")
    bad = _state(3)
    bad["w"] = torch.zeros(2, 2)
    save_inference_checkpoint(tmp_path / "c.pt", bad, CONFIG)
    with pytest.raises(CheckpointMismatchError, match="shape"):
        avg.average_to([tmp_path / "a.pt", tmp_path / "c.pt"], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    assert (
        avg.main(
            [str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--output", str(tmp_path / "x.pt")]
        )
        == 2
    )


def test_last_n_of_an_experiment(tmp_path):
    for step in (10, 20, 30):
        save_inference_checkpoint(
            step_checkpoint_path(tmp_path / "checkpoints", step), _state(step), CONFIG
        )
    chosen = avg.select_checkpoints(tmp_path, 2)
    assert [p.name for p in chosen] == ["step-00000020.ckpt", "step-00000030.ckpt"]
    assert (
        avg.main(["--exp-dir", str(tmp_path), "--last", "2", "--output", str(tmp_path / "avg.pt")])
        == 0
    )
    out = torch.load(tmp_path / "avg.pt", weights_only=True)["state_dict"]
    torch.testing.assert_close(out["w"], (_state(20)["w"] + _state(30)["w"]) / 2)
    with pytest.raises(ValueError, match="fewer than --last 4"):
        avg.select_checkpoints(tmp_path, 4)


class _WritesMarker:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    """The averaging tool read checkpoints with weights_only=False as a fallback (#8.1)."""
    save_inference_checkpoint(tmp_path / "a.pt", _state(1), CONFIG, step=1)
    marker = tmp_path / "marker"
    torch.save(
        {"state_dict": _state(2), "valle_config": CONFIG, "x": _WritesMarker(marker)},
        tmp_path / "b.pt",
    )
    args = [str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--output", str(tmp_path / "o.pt")]
    assert avg.main(args) == 2
    assert not marker.exists() and not (tmp_path / "o.pt").exists()
