"""Build the Lightning Trainer for an experiment and run (or resume) training.

Multi-GPU / multi-node runs go through Lightning: ``devices``, ``num_nodes`` and ``strategy``
are passed as given; under ``torchrun`` or SLURM (``srun``) Lightning reads the rank and world
size from the environment (docs/training.md). The data module builds one lhotse sampler per
rank (``use_distributed_sampler=False``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import lightning as L
import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from valle.train.checkpoint import (
    AtomicCheckpointIO,
    CheckpointMismatchError,
    PeriodicCheckpoint,
    config_mismatch,
    find_last_checkpoint,
    load_checkpoint_weights,
    load_weights,
)
from valle.train.config import (
    ExperimentConfig,
    TrainConfig,
    dump_experiment_yaml,
    experiment_to_dict,
    save_experiment,
)
from valle.train.diagnostics import DiagnosticsLogger
from valle.train.module import TrainingModule
from valle.train.samples import SampleLogger, SampleProvider

logger = logging.getLogger(__name__)


def build_trainer(
    train_cfg: TrainConfig,
    exp_dir: str | os.PathLike[str],
    *,
    accelerator: str = "auto",
    devices: int | str = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    tensorboard: bool = True,
    validate: bool = True,
    callbacks: Sequence[L.Callback] = (),
    enable_progress_bar: bool = False,
) -> L.Trainer:
    """A Trainer that follows ``train_cfg`` and writes everything under ``exp_dir``.

    Training is counted in optimizer steps (``max_steps``; epochs are unlimited). Checkpoints
    come from :class:`~valle.train.checkpoint.PeriodicCheckpoint` (atomic, resumable), logs go
    to ``<exp_dir>/tensorboard``.
    """
    exp_dir = Path(exp_dir)
    validate = validate and train_cfg.val_every_n_steps > 0
    loggers: Any = (
        TensorBoardLogger(save_dir=str(exp_dir), name="tensorboard", version="")
        if tensorboard
        else False
    )
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=cast(Any, train_cfg.precision),  # validated against PRECISIONS
        max_steps=train_cfg.max_steps,
        max_epochs=-1,
        gradient_clip_val=train_cfg.grad_clip or None,
        gradient_clip_algorithm="norm",
        log_every_n_steps=train_cfg.log_every,
        val_check_interval=train_cfg.val_every_n_steps if validate else None,
        check_val_every_n_epoch=None,
        limit_val_batches=train_cfg.limit_val_batches if validate else 0,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        enable_checkpointing=False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(exp_dir),
        logger=loggers,
        callbacks=[
            PeriodicCheckpoint(
                exp_dir,
                every_n_steps=train_cfg.checkpoint_every_n_steps,
                keep_last=train_cfg.keep_last_checkpoints,
            ),
            *callbacks,
        ],
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
    )


def train(
    cfg: ExperimentConfig,
    model: nn.Module,
    datamodule: L.LightningDataModule,
    exp_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    init_from: str | os.PathLike[str] | None = None,
    sample_provider: SampleProvider | None = None,
    diagnostics: bool = True,
    checkpoint_extras: dict[str, Any] | None = None,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """Train ``model`` for the experiment ``cfg`` in ``exp_dir``.

    Args:
        cfg: the resolved experiment (saved to ``<exp_dir>/config.yaml`` and in checkpoints).
        model: a model with ``loss(batch, stages)`` (``valle.registry.build_model(cfg.model)``).
        datamodule: batches for the model (:class:`~valle.train.datamodule.SpeechDataModule`).
        exp_dir: output directory.
        resume: continue from the last full checkpoint in ``<exp_dir>/checkpoints`` (weights,
            optimizer, schedule, data position and RNG states), exactly where it stopped.
        init_from: start from the weights of another run's checkpoint (e.g. train the NAR on
            top of a trained AR); ignored when resuming.
        sample_provider: request synthesized and logged every ``train.sample_every_n_steps``;
            ``None`` (no codec configured) skips samples.
        diagnostics: log the learning diagnostics (text gap, persistence baselines, attention
            alignment; :class:`~valle.train.diagnostics.DiagnosticsLogger`) on a few dev
            batches at each validation.
        checkpoint_extras: plain entries added to every checkpoint (``"symbols"``, ``"codec"``;
            :func:`valle.train.experiment.checkpoint_extras`).
        trainer_kwargs: passed to :func:`build_trainer` (accelerator, devices, num_nodes,
            strategy, tensorboard, callbacks, enable_progress_bar).
    """
    exp_dir = Path(exp_dir)
    ckpt_path = find_last_checkpoint(exp_dir / "checkpoints")
    if resume and ckpt_path is None:
        raise FileNotFoundError(
            f"--resume: no checkpoint in {exp_dir / 'checkpoints'}; drop --resume to start anew"
        )
    if not resume and ckpt_path is not None:
        raise FileExistsError(
            f"{exp_dir} already holds checkpoints (latest {ckpt_path.name}); pass --resume to "
            "continue that run, or choose a new --exp-dir"
        )
    if init_from is not None and not resume:
        state, _ = load_checkpoint_weights(init_from)
        load_weights(model, state, source=f"--init-from {init_from}")
        logger.info("initialized the weights from %s", init_from)

    callbacks = list(trainer_kwargs.pop("callbacks", ()))
    if sample_provider is not None and cfg.train.sample_every_n_steps > 0:
        callbacks.append(SampleLogger(sample_provider, cfg.train.sample_every_n_steps))
    elif cfg.train.sample_every_n_steps > 0:
        logger.info("no codec or dev set configured: audio samples are not logged")
    if diagnostics:
        callbacks.append(DiagnosticsLogger())
    trainer_kwargs.setdefault("validate", getattr(datamodule, "dev_cuts", None) is not None)
    trainer = build_trainer(cfg.train, exp_dir, callbacks=callbacks, **trainer_kwargs)

    valle_config = experiment_to_dict(cfg)
    if resume:
        _check_same_model(cfg, exp_dir)
    if trainer.is_global_zero:
        exp_dir.mkdir(parents=True, exist_ok=True)
        save_experiment(cfg, exp_dir / "config.yaml")
        for lg in trainer.loggers:  # the resolved config beside the curves
            if isinstance(lg, TensorBoardLogger):
                text = dump_experiment_yaml(cfg)
                lg.experiment.add_text("config", f"```\n{text}```", trainer.global_step)
    module = TrainingModule(model, cfg.train, valle_config, checkpoint_extras)
    if resume:
        logger.info("resuming from %s", ckpt_path)
    trainer.fit(
        module,
        datamodule=datamodule,
        ckpt_path=str(ckpt_path) if resume else None,
        weights_only=True,  # AtomicCheckpointIO reads it with valle.io.checkpoint in any case
    )
    return trainer


def _check_same_model(cfg: ExperimentConfig, exp_dir: Path) -> None:
    """On resume, the model section must equal the one in ``<exp_dir>/config.yaml``."""
    saved_path = exp_dir / "config.yaml"
    if not saved_path.is_file():
        return
    with open(saved_path, encoding="utf-8") as f:
        saved = yaml.safe_load(f) or {}
    diff = config_mismatch(saved.get("model"), experiment_to_dict(cfg)["model"])
    if diff:
        raise CheckpointMismatchError(
            f"--resume: the model config differs from {saved_path} ({'; '.join(diff[:5])}); "
            "resume with the same --variant/--size/--config/--set, or start a new --exp-dir"
        )
