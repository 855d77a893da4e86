"""LightningModule wrapping any valle model that has ``loss(batch, stages) -> (loss, metrics)``.

Shape legend: B batch, S text tokens, T code frames, Q codebooks (see ``valle.data.batch``).

The module never asks which variant it trains (DESIGN.md, section 2: heads own their losses).
It logs the loss and every metric the model returns (``train/<name>``, ``val/<name>``), the
learning rate and the global gradient norm before clipping; it builds AdamW with a
warmup + decay schedule stepped once per optimizer step (:mod:`valle.train.schedule`).

Exact resume: before every training step the global RNGs are reseeded from
``(train.seed, rank, global_step)``, so dropout masks depend only on the step, not on what ran
before (validation, sample synthesis, batch prefetching); the RNG states are also saved in the
checkpoint and restored.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from valle.data import batch as B
from valle.registry import variant_stages
from valle.train.checkpoint import (
    CheckpointMismatchError,
    check_state_dict,
    config_mismatch,
    fill_state_defaults,
)
from valle.train.config import TrainConfig
from valle.train.resumable import derive_seed, seed_everything_from
from valle.train.schedule import lr_lambda

logger = logging.getLogger(__name__)

CONFIG_KEY = "valle_config"
RNG_KEY = "valle_rng_states"


def batch_size_of(batch: Mapping[str, Any]) -> int:
    """B of a batch dict (``valle.data.batch``)."""
    for key in (B.AUDIO_CODES, B.TEXT_TOKENS):
        value = batch.get(key)
        if isinstance(value, Tensor):
            return int(value.shape[0])
    raise KeyError(f"batch has neither {B.AUDIO_CODES!r} nor {B.TEXT_TOKENS!r}")


def gradient_norm(parameters: Any) -> Tensor:
    """Global L2 norm of the gradients (parameters without a gradient are skipped)."""
    norms = [p.grad.detach().float().norm(2) for p in parameters if p.grad is not None]
    if not norms:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(norms), 2)


def rng_states() -> dict[str, Any]:
    """The python, numpy, torch (and CUDA) global RNG states."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_states` captured."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def freeze_untrained_parts(model: nn.Module, stages: tuple[str, ...]) -> list[str]:
    """Freeze the model parts named after stages that are not trained (``model.nar`` when only
    ``"ar"`` trains). Their weights stay as loaded, the optimizer holds no state for them,
    and DDP does not wait for gradients that never come.

    Returns:
        the names of the frozen parts.
    """
    frozen = []
    config = getattr(model, "config", None)
    # the variant's one list of stages; a model without a variant config is VALL-E shaped
    names = getattr(type(config), "stages", None) or variant_stages("valle")
    for name in names:
        part = getattr(model, name, None)
        if name not in stages and isinstance(part, nn.Module):
            part.requires_grad_(False)
            frozen.append(name)
    if frozen:
        logger.info("training %s; frozen: %s", ", ".join(stages), ", ".join(frozen))
    return frozen


def set_activation_checkpointing(model: nn.Module, on: bool) -> int:
    """Turn per-layer activation checkpointing of every transformer stack in ``model`` on or
    off (:class:`~valle.modules.transformer.TransformerStack`); returns how many stacks."""
    from valle.modules.transformer import TransformerStack

    stacks = [m for m in model.modules() if isinstance(m, TransformerStack)]
    for stack in stacks:
        stack.checkpointing = on
    return len(stacks)


def _filled_model_config(saved: Any, model: nn.Module) -> Any:
    """A checkpoint's model config with the fields added since it was written at their
    defaults, so that resuming an older run is not refused for a key it never had."""
    from valle.config import ConfigError, from_dict, to_dict

    config = getattr(model, "config", None)
    if config is None or not isinstance(saved, Mapping):
        return saved
    try:
        return to_dict(from_dict(type(config), saved))
    except ConfigError:
        return saved


class TrainingModule(L.LightningModule):
    """Trains ``model`` on the stages of ``train_cfg`` (``("ar",)``, ``("nar",)`` or both).

    Args:
        model: a valle model with ``loss(batch, stages=...) -> (loss, dict[str, Tensor])``.
        train_cfg: optimizer, schedule and bookkeeping settings.
        valle_config: the resolved experiment config as a plain dict
            (``valle.train.config.experiment_to_dict``); saved in every checkpoint under
            ``"valle_config"``.
        checkpoint_extras: more plain entries for every checkpoint, e.g. ``"symbols"`` (the
            symbol table in id order) and ``"codec"`` (the codec facts) so that inference
            needs nothing but the checkpoint (``valle.train.experiment.checkpoint_extras``).
    """

    def __init__(
        self,
        model: nn.Module,
        train_cfg: TrainConfig,
        valle_config: Mapping[str, Any] | None = None,
        checkpoint_extras: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not callable(getattr(model, "loss", None)):
            raise TypeError(
                f"{type(model).__name__} has no loss(batch, stages) method; "
                "build the model with valle.registry.build_model"
            )
        self.model = model
        loss_fn: Any = model.loss
        self._loss_takes_step = "step" in inspect.signature(loss_fn).parameters
        self.train_cfg = train_cfg
        self.valle_config: dict[str, Any] = dict(valle_config or {})
        self.checkpoint_extras: dict[str, Any] = dict(checkpoint_extras or {})
        self.frozen = freeze_untrained_parts(model, train_cfg.stages)
        set_activation_checkpointing(model, train_cfg.activation_checkpointing)
        clash = {CONFIG_KEY, RNG_KEY, "state_dict"} & set(self.checkpoint_extras)
        if clash:
            raise ValueError(f"checkpoint_extras may not use the reserved keys {sorted(clash)}")

    # ------------------------------------------------------------------ steps
    def _step(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        model: Any = self.model  # any nn.Module with the loss contract
        # a loss that schedules a term by the training step (MELLE's KL warm-up) says so
        # with a ``step`` keyword; the others never see it
        extra = {"step": int(self.global_step)} if self._loss_takes_step else {}
        loss, metrics = model.loss(batch, stages=tuple(self.train_cfg.stages), **extra)
        return loss, dict(metrics)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        seed_everything_from(
            derive_seed(self.train_cfg.seed, 2, self.global_rank, self.global_step)
        )

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        loss, metrics = self._step(batch)
        if not torch.isfinite(loss.detach()).all():
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step}; lower train.lr, "
                "raise train.warmup_steps, or use train.precision=32 / bf16-mixed instead of "
                "16-mixed"
            )
        bs = batch_size_of(batch)
        self.log("train/loss", loss.detach().float(), batch_size=bs, prog_bar=True)
        for name, value in metrics.items():
            if name != "loss":
                self.log(f"train/{name}", torch.as_tensor(value).detach().float(), batch_size=bs)
        if self._trainer is not None and self.trainer.optimizers:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log("train/lr", float(lr), batch_size=bs)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        loss, metrics = self._step(batch)
        bs = batch_size_of(batch)
        self.log("val/loss", loss.detach().float(), batch_size=bs, sync_dist=True, prog_bar=True)
        for name, value in metrics.items():
            if name != "loss":
                value = torch.as_tensor(value).detach().float()
                self.log(f"val/{name}", value, batch_size=bs, sync_dist=True)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Called after the mixed-precision unscale and before clipping: the true norm.
        norm = gradient_norm(self.model.parameters())
        self.log("train/grad_norm", norm, batch_size=1)

    # ------------------------------------------------------------------ optimizer
    def configure_optimizers(self) -> Any:
        """AdamW (decoupled weight decay on matrices only) + per-step warmup/decay schedule."""
        cfg = self.train_cfg
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for _, p in self.model.named_parameters():
            if p.requires_grad:
                # biases, norm gains and other vectors are not decayed
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        if not groups:
            raise ValueError("the model has no trainable parameters")
        optimizer = torch.optim.AdamW(
            groups, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), eps=cfg.eps
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.valle_config
        checkpoint[RNG_KEY] = rng_states()
        checkpoint.update(self.checkpoint_extras)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(CONFIG_KEY)
        if saved is not None and self.valle_config:
            old = _filled_model_config(saved.get("model"), self.model)
            diff = config_mismatch(old, self.valle_config.get("model"))
            if diff:
                raise CheckpointMismatchError(
                    "the checkpoint was trained with a different model config "
                    f"({'; '.join(diff)}); resume with the same --variant/--size/--config/--set "
                    "as before, or start a new --exp-dir"
                )
        state = {
            k[len("model.") :]: v
            for k, v in checkpoint.get("state_dict", {}).items()
            if k.startswith("model.")
        }
        filled = fill_state_defaults(self.model, state)
        for k in filled.keys() - state.keys():  # buffers newer than the checkpoint
            checkpoint["state_dict"]["model." + k] = filled[k]
        check_state_dict(self.model, filled, source="the checkpoint being resumed")
        if RNG_KEY in checkpoint:
            set_rng_states(checkpoint[RNG_KEY])
