"""valle.io.checkpoint: code in a pickle never runs; truncated, corrupt and misplaced files get
clear errors; the full training checkpoint's numpy RNG state is the only extra type allowed."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from valle.io.checkpoint import (
    CheckpointPathError,
    CorruptCheckpointError,
    UntrustedCheckpointError,
    load_checkpoint,
    read_model_weights,
    save_inference_checkpoint,
    strip_prefix,
)


class WritesMarker:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _evil_checkpoint(path: Path, marker: Path, *, legacy: bool = False) -> Path:
    obj = {
        "format": "valle-inference",
        "valle_config": {"model": {"variant": "valle"}},
        "state_dict": {"w": torch.ones(2)},
        "payload": WritesMarker(marker),
    }
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickled_code_does_not_run_and_is_refused(tmp_path, legacy) -> None:
    marker = tmp_path / "marker"
    path = _evil_checkpoint(tmp_path / "evil.pt", marker, legacy=legacy)
    with pytest.raises(UntrustedCheckpointError) as err:
        load_checkpoint(path)
    assert not marker.exists()
    msg = str(err.value)
    assert str(path) in msg and "not trusted" in msg and "--i-trust-this-file" in msg
    if not legacy:
        assert ".open" in msg  # the static scan names what it refused (io.open)
    with pytest.raises(UntrustedCheckpointError):
        read_model_weights(path)
    assert not marker.exists()


def test_training_checkpoint_readers_refuse_pickled_code(tmp_path) -> None:
    """The old readers retried with weights_only=False and ran the code."""
    from valle.train.checkpoint import checkpoint_extras_of, load_checkpoint_weights

    marker = tmp_path / "marker"
    path = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    for read in (load_checkpoint_weights, checkpoint_extras_of):
        with pytest.raises(UntrustedCheckpointError, match="not trusted"):
            read(path)
    assert not marker.exists()


def test_full_training_checkpoint_with_rng_states_loads(tmp_path) -> None:
    """What Lightning + valle put in a full checkpoint: plain containers, tensors, the Python
    and numpy RNG states (numpy arrays), None entries."""
    obj = {
        "epoch": 0,
        "global_step": 4,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": {"model.w": torch.ones(2)},
        "loops": {"fit_loop": {"state_dict": {}, "is_last_batch": False}},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(4.0)}}, "param_groups": []}],
        "lr_schedulers": [{"lr_lambdas": [None], "_last_lr": [0.1]}],
        "valle_config": {"model": {"variant": "valle"}},
        "valle_rng_states": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        },
    }
    path = tmp_path / "step-00000004.ckpt"
    torch.save(obj, path)
    got = load_checkpoint(path)
    state = got["valle_rng_states"]["numpy"]
    assert state[0] == "MT19937" and np.array_equal(state[1], np.random.get_state()[1])
    weights, config = read_model_weights(path)
    assert set(weights) == {"w"} and config["model"]["variant"] == "valle"


def test_truncated_checkpoint_is_a_clear_error(tmp_path) -> None:
    good = save_inference_checkpoint(
        tmp_path / "model.pt", {"w": torch.randn(64, 64)}, {"model": {}}, step=1
    )
    data = good.read_bytes()
    for name, content in [
        ("half.pt", data[: len(data) // 2]),
        ("tail.pt", data[:-30]),
        ("empty.pt", b""),
        ("noise.pt", os.urandom(1000)),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CorruptCheckpointError) as err:
            load_checkpoint(path)
        msg = str(err.value)
        assert str(path) in msg and "truncated or corrupt" in msg and "older checkpoint" in msg
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(100)}, legacy, _use_new_zipfile_serialization=False)
    cut = tmp_path / "legacy_cut.pt"
    cut.write_bytes(legacy.read_bytes()[:200])
    with pytest.raises(CorruptCheckpointError, match="truncated or corrupt"):
        load_checkpoint(cut)
    assert torch.equal(load_checkpoint(legacy)["w"], torch.ones(100))  # legacy format is fine


def test_directory_given_as_checkpoint_names_the_file_inside(tmp_path) -> None:
    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointPathError, match="is a directory.*<exp>/model.pt"):
        load_checkpoint(exp)
    (exp / "checkpoints" / "step-00000002.ckpt").write_bytes(b"x")
    with pytest.raises(CheckpointPathError, match=r"did you mean .*step-00000002\.ckpt"):
        load_checkpoint(exp / "checkpoints")
    save_inference_checkpoint(exp / "model.pt", {"w": torch.ones(1)}, {"model": {}})
    with pytest.raises(CheckpointPathError, match=r"is a directory.*did you mean .*model\.pt\?"):
        load_checkpoint(exp)
    with pytest.raises(FileNotFoundError, match="does not exist"):  # CLIs catch FileNotFoundError
        load_checkpoint(exp / "nope.pt")


def test_not_a_dict_and_other_pickles(tmp_path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.ones(1)], path)
    with pytest.raises(ValueError, match="not a valle checkpoint"):
        load_checkpoint(path)
    plain = tmp_path / "plain.pkl"  # a plain pickle (protocol 4) of a harmless dict
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises((UntrustedCheckpointError, CorruptCheckpointError)):
        load_checkpoint(plain)


def test_strip_prefix() -> None:
    state = {"model.a": 1, "model.b.c": 2, "other": 3}
    assert strip_prefix(state, "model.") == {"a": 1, "b.c": 2}
