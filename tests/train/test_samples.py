"""Audio samples: synthesized with model.generate, decoded by the codec, logged to TensorBoard."""

from __future__ import annotations

import logging

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.train.fakes import TEXT_V, FakeCodec, FakeSpeechLM, Q, V, dummy_batch
from valle.config import compose_config
from valle.registry import build_model
from valle.train.config import TrainConfig
from valle.train.module import TrainingModule
from valle.train.samples import SampleLogger, SampleProvider, mel_figure


def _trainer(logger):
    trainer = L.Trainer(
        accelerator="cpu",
        logger=logger,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    return trainer


def test_provider_from_batch_works_with_the_real_model():
    batch = dummy_batch(3)
    provider = SampleProvider.from_batch(batch, FakeCodec(), prompt_index=0, target_index=1)
    n0, n1 = int(batch["text_lens"][0]), int(batch["text_lens"][1])
    assert provider.text_tokens.shape == (n0 + n1,)
    assert provider.prompt_codes.shape == (int(batch["audio_lens"][0]), Q)
    torch.manual_seed(0)
    model = build_model(
        compose_config(
            "valle",
            "tiny",
            ["ar.max_len_ratio=2.0"],
            text_vocab_size=TEXT_V,
            codebook_size=V,
            num_codebooks=Q,
        )
    ).eval()
    wave, sr = provider.synthesize(model)
    assert sr == 8000 and wave.ndim == 1 and torch.isfinite(wave).all()
    assert wave.abs().max() <= 1.0


def test_sample_logger_writes_audio_and_mel(tmp_path):
    tb = TensorBoardLogger(save_dir=str(tmp_path), name="tb", version="")
    trainer = _trainer(tb)
    module = TrainingModule(FakeSpeechLM(), TrainConfig())
    module.trainer = trainer
    provider = SampleProvider.from_batch(dummy_batch(2), FakeCodec())
    cb = SampleLogger(provider, every_n_steps=5)
    module.model.train()
    cb.log_sample(trainer, module, step=5)
    assert module.model.training  # restored after synthesis
    tb.experiment.flush()
    acc = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert {"sample/generated", "sample/reference"} <= set(acc.Tags()["audio"])
    assert {"sample/generated_mel", "sample/reference_mel"} <= set(acc.Tags()["images"])


def test_no_tensorboard_or_failing_generate_is_skipped(caplog, tmp_path):
    trainer = _trainer(False)

    class Failing(FakeSpeechLM):
        def generate(self, *a, **k):
            raise RuntimeError("boom")

    module = TrainingModule(Failing(), TrainConfig())
    module.trainer = trainer
    cb = SampleLogger(SampleProvider.from_batch(dummy_batch(2), FakeCodec()), every_n_steps=1)
    cb.log_sample(trainer, module, step=1)  # no TensorBoard: returns quietly

    tb_trainer = _trainer(TensorBoardLogger(save_dir=str(tmp_path), name="x"))
    module.trainer = tb_trainer
    with caplog.at_level(logging.ERROR):
        cb.log_sample(tb_trainer, module, step=1)
    assert "synthesizing the training sample failed" in caplog.text


def test_mel_figure_has_one_image():
    wave = FakeCodec().decode([torch.randint(0, V, (10, Q))])[0]
    fig = mel_figure(wave, 8000, "x")
    assert len(fig.axes[0].images) == 1
    data = fig.axes[0].images[0].get_array()
    assert data.shape[0] == 80 and data.shape[1] > 50
