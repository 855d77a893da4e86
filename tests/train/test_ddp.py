"""Two CPU processes with DDP (gloo): per-rank samplers, rank-0 checkpoints, resume."""

from __future__ import annotations

import pytest
import torch

from tests.train.fakes import FakeDataset, FakeModelConfig, FakeSpeechLM, make_cuts
from valle.train.checkpoint import list_step_checkpoints
from valle.train.config import ExperimentConfig, TrainConfig
from valle.train.datamodule import SpeechDataModule
from valle.train.trainer import train


def _run(exp_dir, max_steps, resume=False):
    cfg = ExperimentConfig(
        model=FakeModelConfig(),
        train=TrainConfig(
            lr=3e-3,
            warmup_steps=1,
            max_steps=max_steps,
            max_duration=3.0,
            num_buckets=2,
            checkpoint_every_n_steps=2,
            keep_last_checkpoints=0,
            val_every_n_steps=2,
            limit_val_batches=1,
            sample_every_n_steps=0,
            log_every=1,
        ),
    )
    torch.manual_seed(0)
    dm = SpeechDataModule(
        make_cuts(24), FakeDataset(), dev_cuts=make_cuts(4, seed=1), max_duration=3.0, num_buckets=2
    )
    return train(
        cfg,
        FakeSpeechLM(),
        dm,
        exp_dir,
        resume=resume,
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        tensorboard=False,
    )


@pytest.mark.slow  # ~20 s: two spawned processes import torch and Lightning
def test_two_process_ddp_trains_and_resumes(tmp_path):
    _run(tmp_path, 4)
    assert [s for s, _ in list_step_checkpoints(tmp_path / "checkpoints")] == [2, 4]
    ckpt = torch.load(tmp_path / "checkpoints" / "step-00000004.ckpt", weights_only=False)
    assert ckpt["SpeechDataModule"]["world_size"] == 2
    assert ckpt["global_step"] == 4
    _run(tmp_path, 6, resume=True)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["step"] == 6
