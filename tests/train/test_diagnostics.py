"""Learning diagnostics logged to TensorBoard at validation time."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader

from tests.train.fakes import FakeSpeechLM
from valle.testing.model import dummy_batch, tiny_config, tiny_model
from valle.train.config import TrainConfig
from valle.train.diagnostics import DiagnosticsLogger
from valle.train.module import TrainingModule

KEYS = {
    "diag/ar/text_gap",
    "diag/ar/acc",
    "diag/ar/persistence_acc",
    "diag/stop/eos_abs_error_frames_mean",
    "diag/attention/best_diagonal_focus",
    "diag/attention/layer0_monotonic",
    "diag/nar/stage_1_acc",
    "diag/nar/stage_1_persistence_acc",
}


def _batches(n: int = 3) -> list[dict]:
    cfg = tiny_config("valle", num_codebooks=2)
    return [dummy_batch(cfg, batch_size=3, seed=s) for s in range(n)]


def test_validation_logs_diagnostics_of_the_first_batches(tmp_path) -> None:
    torch.set_num_threads(1)
    model = tiny_model(seed=0, num_codebooks=2)
    module = TrainingModule(model, TrainConfig(lr=1e-3, warmup_steps=1, max_steps=2))
    tb = TensorBoardLogger(save_dir=str(tmp_path), name="tb", version="")
    callback = DiagnosticsLogger(num_batches=2)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        val_check_interval=2,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=tb,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    train, dev = _batches(2), _batches(3)
    trainer.fit(
        module,
        train_dataloaders=DataLoader(train, batch_size=None),
        val_dataloaders=DataLoader(dev, batch_size=None),
    )
    tb.experiment.flush()
    acc = EventAccumulator(str(tmp_path / "tb")).Reload()
    scalars = set(acc.Tags()["scalars"])
    assert KEYS <= scalars, sorted(KEYS - scalars)
    assert "diag/attention" in acc.Tags()["images"]
    assert [e.step for e in acc.Scalars("diag/ar/text_gap")] == [2]
    assert callback._batches == []  # copies dropped after use
    assert model.training  # restored


def test_only_trained_parts_are_measured_and_fake_models_are_skipped(tmp_path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    model = tiny_model(seed=0, num_codebooks=2)
    module = TrainingModule(model, TrainConfig(stages=("nar",)))
    writer = SummaryWriter(str(tmp_path))
    summary = DiagnosticsLogger().log_diagnostics(writer, module, _batches(1), step=5)
    assert summary is not None and "nar" in summary and "ar" not in summary
    fake = TrainingModule(FakeSpeechLM(), TrainConfig())
    assert DiagnosticsLogger().log_diagnostics(writer, fake, _batches(1), step=5) is None


def test_a_batch_of_one_has_no_text_gap_but_the_rest(tmp_path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    cfg = tiny_config("valle", num_codebooks=2)
    module = TrainingModule(tiny_model(seed=0, num_codebooks=2), TrainConfig())
    one = dummy_batch(cfg, batch_size=1, seed=3)
    summary = DiagnosticsLogger().log_diagnostics(SummaryWriter(str(tmp_path)), module, [one], 1)
    assert "text_gap" not in summary["ar"] and "acc" in summary["ar"]
