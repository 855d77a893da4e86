"""Checkpoints: config inside and beside, inference loading, mismatch errors, atomic writes."""

from __future__ import annotations

import pytest
import torch

from tests.train.fakes import TEXT_V, FakeDataset, Q, V, dummy_batch, make_cuts
from valle.config import compose_config
from valle.registry import build_model
from valle.train import checkpoint as ck
from valle.train.checkpoint import (
    CheckpointMismatchError,
    build_model_from_checkpoint,
    list_step_checkpoints,
    load_checkpoint_weights,
    load_weights,
)
from valle.train.config import ExperimentConfig, TrainConfig, load_experiment
from valle.train.datamodule import SpeechDataModule
from valle.train.trainer import train

VOCAB = dict(text_vocab_size=TEXT_V, codebook_size=V, num_codebooks=Q)


def _experiment(steps=4, overrides=(), **train_kw):
    model_cfg = compose_config("valle", "tiny", overrides, **VOCAB)
    train_cfg = TrainConfig(
        lr=1e-3,
        warmup_steps=1,
        max_steps=steps,
        max_duration=4.0,
        num_buckets=2,
        checkpoint_every_n_steps=2,
        keep_last_checkpoints=1,
        val_every_n_steps=0,
        sample_every_n_steps=0,
        log_every=1,
        **train_kw,
    )
    return ExperimentConfig(model=model_cfg, train=train_cfg)


def _train(cfg, exp_dir, **kw):
    torch.manual_seed(0)
    model = build_model(cfg.model)
    dm = SpeechDataModule(make_cuts(12), FakeDataset(), max_duration=4.0, num_buckets=2)
    train(cfg, model, dm, exp_dir, accelerator="cpu", devices=1, tensorboard=False, **kw)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    exp_dir = tmp_path_factory.mktemp("exp")
    cfg = _experiment()
    model = _train(cfg, exp_dir)
    return cfg, model, exp_dir


def test_checkpoint_holds_config_and_prunes(trained):
    cfg, _, exp_dir = trained
    steps = [s for s, _ in list_step_checkpoints(exp_dir / "checkpoints")]
    assert steps == [4]  # keep_last_checkpoints=1 removed step 2
    full = torch.load(exp_dir / "checkpoints" / "step-00000004.ckpt", weights_only=False)
    assert full["valle_config"]["model"]["variant"] == "valle"
    assert full["valle_config"]["train"]["max_steps"] == 4
    assert load_experiment(exp_dir / "config.yaml") == cfg
    assert "# " in (exp_dir / "config.yaml").read_text()  # keys carry their units
    leftovers = [p.name for p in exp_dir.rglob("*.tmp")]
    assert leftovers == []


def test_inference_checkpoint_rebuilds_the_trained_model(trained):
    _, model, exp_dir = trained
    loaded, config = build_model_from_checkpoint(exp_dir / "model.pt")
    assert config["model"]["ar"]["backbone"]["num_layers"] == 2
    for (k, a), (k2, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=False
    ):
        assert k == k2 and torch.equal(a, b), k
    model.eval()
    batch = dummy_batch(2)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(model.loss(batch, generator=g1)[0], loaded.loss(batch, generator=g2)[0])
    # the full checkpoint loads the same weights
    state, _ = load_checkpoint_weights(exp_dir / "checkpoints" / "step-00000004.ckpt")
    assert all(torch.equal(state[k], v) for k, v in loaded.state_dict().items())
    # and it is small: no optimizer state
    obj = torch.load(exp_dir / "model.pt", weights_only=True)
    assert set(obj) >= {"format", "valle_config", "state_dict", "step"} and obj["step"] == 4


def test_wrong_config_is_a_clear_error(trained):
    _, _, exp_dir = trained
    other = build_model(compose_config("valle", "tiny", ["ar.backbone.d_model=64"], **VOCAB))
    state, _ = load_checkpoint_weights(exp_dir / "model.pt")
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        load_weights(other, state, source="model.pt")


def test_resume_with_another_model_config_is_refused(trained, tmp_path):
    cfg, _, exp_dir = trained
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exp_dir, copy)
    changed = _experiment(steps=6, overrides=["ar.backbone.num_layers=3"])
    with pytest.raises(CheckpointMismatchError, match="num_layers"):
        _train(changed, copy, resume=True)


def test_init_from_another_run_then_train_nar_only(trained, tmp_path):
    _, model, exp_dir = trained
    cfg = _experiment(steps=2, stages=("nar",))
    nar_model = _train(cfg, tmp_path / "nar", init_from=exp_dir / "model.pt")
    # the AR part received no gradient, so it is exactly the initial (trained) AR
    for k, v in model.state_dict().items():
        if k.startswith("ar."):
            assert torch.equal(nar_model.state_dict()[k], v), k
    assert any(
        not torch.equal(nar_model.state_dict()[k], v)
        for k, v in model.state_dict().items()
        if k.startswith("nar.")
    )


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    ck.save_inference_checkpoint(path, {"w": torch.ones(2)}, {"model": {}}, step=1)

    def boom(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        ck.save_inference_checkpoint(path, {"w": torch.zeros(2)}, {"model": {}}, step=2)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_not_a_valle_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointMismatchError, match="valle_config"):
        load_checkpoint_weights(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint_weights(tmp_path / "missing.pt")


class _WritesMarker:
    """Unpickling this calls ``open(marker, "w")``: any code a pickle could run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_resume_refuses_a_checkpoint_that_would_run_code(trained, tmp_path):
    """Resume used weights_only=False: a pickled object in the last checkpoint ran (#8.1)."""
    import shutil

    _, _, exp_dir = trained
    copy = tmp_path / "copy"
    shutil.copytree(exp_dir, copy)
    last = copy / "checkpoints" / "step-00000004.ckpt"
    obj = torch.load(last, weights_only=False)  # written by this test module: trusted
    marker = tmp_path / "marker"
    obj["callbacks"] = {"injected": _WritesMarker(marker)}
    torch.save(obj, last)
    with pytest.raises(ValueError, match=r"not trusted.*--i-trust-this-file"):
        _train(_experiment(steps=6), copy, resume=True)
    assert not marker.exists()


def test_next_start_after_kill_removes_temp_files_and_surplus_checkpoints(trained, tmp_path):
    """A kill -9 while writing leaves .<name>.<token>.tmp files, and one between saving and
    pruning leaves more than keep_last_checkpoints (#8.9); the next start removes both."""
    import shutil

    import lightning as L

    _, _, exp_dir = trained
    copy = tmp_path / "copy"
    shutil.copytree(exp_dir, copy)
    ckpts = copy / "checkpoints"
    last = ckpts / "step-00000004.ckpt"
    for step in (1, 2):  # not yet pruned (keep_last_checkpoints=1)
        shutil.copy(last, ckpts / f"step-{step:08d}.ckpt")
    (ckpts / ".step-00000006.ckpt.k3j_x9a1.tmp").write_bytes(b"half a checkpoint")
    (copy / ".model.pt.0123abcd.tmp").write_bytes(b"half a model.pt")
    seen = {}

    class Look(L.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["checkpoints"] = sorted(p.name for p in ckpts.iterdir())
            seen["hidden"] = sorted(p.name for p in copy.iterdir() if p.name.endswith(".tmp"))

    _train(_experiment(steps=6), copy, resume=True, callbacks=[Look()])
    assert seen == {"checkpoints": ["step-00000004.ckpt"], "hidden": []}
    assert [s for s, _ in list_step_checkpoints(ckpts)] == [6]
