"""TrainingModule: finite, decreasing losses; bf16 on CPU; logged lr / grad norm; clear errors."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from tests.train.fakes import FakeSpeechLM, dummy_batch
from valle.train.config import TrainConfig
from valle.train.module import TrainingModule, gradient_norm
from valle.train.trainer import build_trainer


class Recorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.metrics: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def _fit(tmp_path, steps: int, **train_kw):
    torch.manual_seed(0)
    batch = dummy_batch(6)
    cfg = TrainConfig(
        lr=1e-2,
        warmup_steps=2,
        max_steps=steps,
        log_every=1,
        val_every_n_steps=0,
        checkpoint_every_n_steps=0,
        sample_every_n_steps=0,
        **train_kw,
    )
    module = TrainingModule(FakeSpeechLM(dropout=0.0), cfg, {"model": {"d": 32}})
    rec = Recorder()
    trainer = build_trainer(
        cfg,
        tmp_path,
        accelerator="cpu",
        devices=1,
        tensorboard=False,
        validate=False,
        callbacks=[rec],
    )
    trainer.fit(module, train_dataloaders=DataLoader([batch] * steps, batch_size=None))
    return rec, trainer


def test_losses_are_finite_and_decrease(tmp_path):
    rec, trainer = _fit(tmp_path, 30)
    assert len(rec.losses) == 30 and all(math.isfinite(x) for x in rec.losses)
    assert sum(rec.losses[-5:]) / 5 < 0.6 * sum(rec.losses[:3]) / 3
    logged = rec.metrics[-1]
    for key in ("train/loss", "train/ar/acc", "train/nar/loss", "train/lr", "train/grad_norm"):
        assert key in logged, key
    assert "train/loss" in logged and logged["train/grad_norm"] > 0
    # the final inference checkpoint is written at the end even without periodic ones
    assert (tmp_path / "model.pt").is_file()


@pytest.mark.parametrize("precision", ["bf16-mixed"])  # Lightning maps 16-mixed to bf16 on CPU
def test_mixed_precision_on_cpu_stays_finite(tmp_path, precision):
    rec, trainer = _fit(tmp_path, 6, precision=precision)
    assert trainer.precision == precision
    assert all(math.isfinite(x) for x in rec.losses)
    assert rec.losses[-1] < rec.losses[0]


def test_bf16_real_model_finite(tmp_path):
    from tests.train.fakes import TEXT_V, Q, V
    from valle.config import compose_config
    from valle.registry import build_model

    torch.manual_seed(0)
    model = build_model(
        compose_config("valle", "tiny", text_vocab_size=TEXT_V, codebook_size=V, num_codebooks=Q)
    )
    cfg = TrainConfig(
        lr=1e-3,
        warmup_steps=1,
        max_steps=4,
        precision="bf16-mixed",
        log_every=1,
        val_every_n_steps=0,
        checkpoint_every_n_steps=0,
        sample_every_n_steps=0,
    )
    rec = Recorder()
    trainer = build_trainer(
        cfg,
        tmp_path,
        accelerator="cpu",
        devices=1,
        tensorboard=False,
        validate=False,
        callbacks=[rec],
    )
    trainer.fit(
        TrainingModule(model, cfg),
        train_dataloaders=DataLoader([dummy_batch(4)] * 4, batch_size=None),
    )
    assert len(rec.losses) == 4 and all(math.isfinite(x) for x in rec.losses)
    assert all(math.isfinite(m["train/grad_norm"]) for m in rec.metrics)


def test_lr_follows_warmup_then_decay(tmp_path):
    rec, _ = _fit(tmp_path, 8, decay="linear", min_lr_ratio=0.0)
    lrs = [m["train/lr"] for m in rec.metrics]
    assert lrs[0] == pytest.approx(1e-2 / 2) and lrs[1] == pytest.approx(1e-2)
    assert lrs[2] == pytest.approx(1e-2)  # decay starts from the peak
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False))


def test_gradient_clipping_bounds_the_update(tmp_path):
    # with clipping at 1e-6, the weights hardly move; without, they do
    rec_clip, tr_clip = _fit(tmp_path / "a", 3, grad_clip=1e-6)
    rec_free, tr_free = _fit(tmp_path / "b", 3, grad_clip=0.0)
    assert rec_clip.metrics[-1]["train/grad_norm"] > 1e-3  # logged before clipping
    drift_clip = abs(rec_clip.losses[-1] - rec_clip.losses[0])
    drift_free = abs(rec_free.losses[-1] - rec_free.losses[0])
    assert drift_free > drift_clip


def test_gradient_norm_matches_torch():
    lin = torch.nn.Linear(3, 2)
    lin(torch.randn(4, 3)).pow(2).sum().backward()
    expected = torch.nn.utils.clip_grad_norm_(lin.parameters(), float("inf"))
    assert float(gradient_norm(lin.parameters())) == pytest.approx(float(expected), rel=1e-6)


def test_non_finite_loss_is_a_clear_error():
    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def loss(self, batch, stages):
            return self.w * float("nan"), {}

    module = TrainingModule(Broken(), TrainConfig())
    with pytest.raises(FloatingPointError, match="lower train.lr"):
        module.training_step(dummy_batch(2), 0)


def test_model_without_loss_is_rejected():
    with pytest.raises(TypeError, match="loss"):
        TrainingModule(torch.nn.Linear(2, 2), TrainConfig())


def test_parts_of_untrained_stages_are_frozen():
    class TwoParts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ar = torch.nn.Linear(2, 2)
            self.nar = torch.nn.Linear(2, 2)

        def loss(self, batch, stages):
            return self.ar.weight.sum(), {}

    model = TwoParts()
    module = TrainingModule(model, TrainConfig(stages=("ar",)))
    assert module.frozen == ["nar"]
    assert not any(p.requires_grad for p in model.nar.parameters())
    assert all(p.requires_grad for p in model.ar.parameters())
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert sum(len(g["params"]) for g in groups) == 2  # only the AR's weight and bias
