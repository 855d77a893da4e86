"""Exact resume: an interrupted-and-resumed run reproduces the uninterrupted loss curve."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from tests.train.fakes import FakeDataset, FakeModelConfig, FakeSpeechLM, make_cuts
from valle.train.config import ExperimentConfig, TrainConfig
from valle.train.datamodule import SpeechDataModule
from valle.train.trainer import train


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}
        self.cut_ids: dict[int, list[str]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step  # after the optimizer step of this batch
        self.losses[step] = float(outputs["loss"])
        self.cut_ids[step] = list(batch["cut_ids"])


class Crash(L.Callback):
    """Kills the run after ``step`` optimizer steps, like a node failure."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise SimulatedCrash(f"crash at step {self.step}")


class SimulatedCrash(RuntimeError):
    pass


def _run(exp_dir, max_steps, resume=False, num_workers=0, crash_at=None):
    # 24 cuts of ~1.3 s with 4 s batches -> ~9 batches per epoch: the run crosses an epoch.
    cfg = ExperimentConfig(
        model=FakeModelConfig(),
        train=TrainConfig(
            lr=3e-3,
            warmup_steps=3,
            max_steps=max_steps,
            max_duration=4.0,
            num_buckets=2,
            checkpoint_every_n_steps=5,
            keep_last_checkpoints=0,
            val_every_n_steps=6,
            limit_val_batches=2,
            sample_every_n_steps=0,
            log_every=1,
        ),
    )
    torch.manual_seed(cfg.train.seed)
    model = FakeSpeechLM()
    dm = SpeechDataModule(
        make_cuts(24),
        FakeDataset(),
        dev_cuts=make_cuts(6, seed=1),
        max_duration=cfg.train.max_duration,
        num_buckets=cfg.train.num_buckets,
        seed=cfg.train.seed,
        num_workers=num_workers,
    )
    rec = LossRecorder()
    callbacks = [rec] if crash_at is None else [rec, Crash(crash_at)]
    try:
        train(
            cfg,
            model,
            dm,
            exp_dir,
            resume=resume,
            accelerator="cpu",
            devices=1,
            tensorboard=False,
            callbacks=callbacks,
        )
    except SimulatedCrash:
        pass
    return rec


@pytest.mark.parametrize("num_workers", [0, 1])
def test_resume_reproduces_uninterrupted_losses(tmp_path, num_workers):
    full = _run(tmp_path / "full", 14, num_workers=num_workers)
    assert sorted(full.losses) == list(range(1, 15))

    # crash at step 8: the last checkpoint is step 5, steps 6-8 are lost and redone
    part = _run(tmp_path / "part", 14, num_workers=num_workers, crash_at=8)
    assert max(part.losses) == 8
    resumed = _run(tmp_path / "part", 14, resume=True, num_workers=num_workers)
    assert min(resumed.losses) == 6
    for step in range(6, 15):
        assert resumed.cut_ids[step] == full.cut_ids[step], f"batch differs at step {step}"
        assert resumed.losses[step] == pytest.approx(full.losses[step], abs=1e-6), step
    for step in range(1, 9):
        assert part.losses[step] == pytest.approx(full.losses[step], abs=1e-6), step


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="drop --resume"):
        _run(tmp_path / "none", 3, resume=True)


def test_existing_checkpoints_need_resume(tmp_path):
    _run(tmp_path / "x", 5)
    with pytest.raises(FileExistsError, match="--resume"):
        _run(tmp_path / "x", 6)
