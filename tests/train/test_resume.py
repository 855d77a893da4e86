"""Exact resume: an interrupted-and-resumed run reproduces the uninterrupted loss curve."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from tests.train.fakes import FakeDataset, FakeModelConfig, FakeSpeechLM, make_cuts
from valle.data.dataset import make_sampler
from valle.train.config import ExperimentConfig, TrainConfig
from valle.train.datamodule import SpeechDataModule
from valle.train.trainer import train


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}
        self.cut_ids: dict[int, list[str]] = {}
        self.position: dict[int, tuple[int, int]] = {}  # step -> (epoch, batch_idx)
        self.model: torch.nn.Module | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step  # after the optimizer step of this batch
        self.losses[step] = float(outputs["loss"])
        self.cut_ids[step] = list(batch["cut_ids"])
        self.position[step] = (trainer.current_epoch, batch_idx)
        self.model = pl_module.model

    def on_train_end(self, trainer, pl_module):
        # epoch, step and the step the loggers write at (Lightning's batches_that_stepped)
        self.end = (
            trainer.current_epoch,
            trainer.global_step,
            trainer.fit_loop.epoch_loop._batches_that_stepped,
        )


class Crash(L.Callback):
    """Kills the run after ``step`` optimizer steps, like a node failure."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise SimulatedCrash(f"crash at step {self.step}")


class SimulatedCrash(RuntimeError):
    pass


def _run(exp_dir, max_steps, resume=False, num_workers=0, crash_at=None, checkpoint_every=5):
    # 24 cuts of ~1.3 s with 4 s batches -> ~9 batches per epoch: the run crosses an epoch.
    cfg = ExperimentConfig(
        model=FakeModelConfig(),
        train=TrainConfig(
            lr=3e-3,
            warmup_steps=3,
            max_steps=max_steps,
            max_duration=4.0,
            num_buckets=2,
            checkpoint_every_n_steps=checkpoint_every,
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


def _epoch_lengths(n_epochs: int) -> list[int]:
    """Batches per epoch of the training stream that ``_run`` builds."""
    cfg = TrainConfig(max_duration=4.0, num_buckets=2)
    sampler = make_sampler(
        make_cuts(24), max_duration=cfg.max_duration, num_buckets=cfg.num_buckets, seed=cfg.seed
    )
    lengths = []
    for epoch in range(n_epochs):
        sampler.set_epoch(epoch)
        lengths.append(sum(1 for _ in sampler))
    return lengths


@pytest.mark.parametrize("num_workers", [0, 1])
def test_resume_at_the_last_batch_of_an_epoch_is_exact(tmp_path, num_workers):
    """Issue #8.2: a checkpoint written after the last batch of an epoch must resume with the
    first batch of the next epoch, not skip that epoch."""
    first, second = _epoch_lengths(2)
    boundary = first  # the optimizer step of the last batch of epoch 0
    max_steps = first + second + 2  # the resumed run crosses another boundary too
    full = _run(tmp_path / "full", max_steps, num_workers=num_workers, checkpoint_every=boundary)
    assert full.position[boundary] == (0, first - 1)
    assert full.position[boundary + 1] == (1, 0)

    part = _run(
        tmp_path / "part",
        max_steps,
        num_workers=num_workers,
        crash_at=boundary + 3,
        checkpoint_every=boundary,
    )
    assert max(part.losses) == boundary + 3
    resumed = _run(
        tmp_path / "part",
        max_steps,
        resume=True,
        num_workers=num_workers,
        checkpoint_every=boundary,
    )
    assert min(resumed.losses) == boundary + 1
    assert sorted(resumed.losses) == list(range(boundary + 1, max_steps + 1))
    for step in range(boundary + 1, max_steps + 1):
        assert resumed.position[step] == full.position[step], f"position differs at step {step}"
        assert resumed.cut_ids[step] == full.cut_ids[step], f"batch differs at step {step}"
        assert resumed.losses[step] == full.losses[step], f"loss differs at step {step}"
    assert resumed.end == full.end
    want, got = full.model.state_dict(), resumed.model.state_dict()
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), f"final weight {name} differs"


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="drop --resume"):
        _run(tmp_path / "none", 3, resume=True)


def test_existing_checkpoints_need_resume(tmp_path):
    _run(tmp_path / "x", 5)
    with pytest.raises(FileExistsError, match="--resume"):
        _run(tmp_path / "x", 6)
