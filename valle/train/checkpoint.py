"""Checkpoints during training: the atomic Lightning CheckpointIO, periodic saving, averaging.

Two formats live in an experiment directory::

    <exp_dir>/config.yaml                     resolved experiment config (model/train/data)
    <exp_dir>/checkpoints/step-00001000.ckpt  full Lightning checkpoint (resumable): weights,
                                              optimizer, scheduler, loop and data positions,
                                              RNG states and "valle_config"
    <exp_dir>/model.pt                        inference checkpoint of the latest step (see
                                              :mod:`valle.io.checkpoint` for its entries)

Reading any checkpoint goes through :func:`valle.io.checkpoint.load_checkpoint` (weights only,
a short allow-list, never ``weights_only=False``), also when Lightning resumes a run
(:class:`AtomicCheckpointIO`). Every file is written by :mod:`valle.io.atomic`, so a crash never
leaves a half-written checkpoint under the final name; the temp files and surplus checkpoints
that a ``kill -9`` leaves behind are removed when the next run starts.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from valle.io.atomic import atomic_torch_save, remove_stale_temps
from valle.io.checkpoint import (
    CONFIG_KEY,
    EXTRA_KEYS,
    INFERENCE_FORMAT,
    CheckpointMismatchError,
    build_model_from_checkpoint,
    check_state_dict,
    checkpoint_extras,
    fill_state_defaults,
    load_checkpoint,
    load_weights,
    model_config_from,
    read_model_weights,
    save_inference_checkpoint,
)

__all__ = [
    "CONFIG_KEY",
    "EXTRA_KEYS",
    "INFERENCE_FORMAT",
    "AtomicCheckpointIO",
    "CheckpointMismatchError",
    "PeriodicCheckpoint",
    "atomic_torch_save",
    "average_checkpoints",
    "build_model_from_checkpoint",
    "check_state_dict",
    "fill_state_defaults",
    "checkpoint_extras_of",
    "config_mismatch",
    "find_last_checkpoint",
    "list_step_checkpoints",
    "load_checkpoint_weights",
    "load_weights",
    "model_config_from",
    "save_inference_checkpoint",
    "step_checkpoint_path",
]

logger = logging.getLogger(__name__)

_STEP_RE = re.compile(r"^step-(\d+)\.ckpt$")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO: atomic local writes; reads through the safe loader.

    ``load_checkpoint`` ignores Lightning's ``weights_only`` argument: a resumed checkpoint is
    always read with ``weights_only=True`` and the allow-list of :mod:`valle.io.checkpoint`.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(path, checkpoint)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint(path, map_location="cpu" if map_location is None else map_location)


def step_checkpoint_path(ckpt_dir: str | os.PathLike[str], step: int) -> Path:
    """``<ckpt_dir>/step-00001000.ckpt``."""
    return Path(ckpt_dir) / f"step-{step:08d}.ckpt"


def list_step_checkpoints(ckpt_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, path)`` of the full checkpoints in ``ckpt_dir``, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = []
    for p in ckpt_dir.iterdir():
        m = _STEP_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def find_last_checkpoint(ckpt_dir: str | os.PathLike[str]) -> Path | None:
    """The full checkpoint with the highest step, or ``None``."""
    found = list_step_checkpoints(ckpt_dir)
    return found[-1][1] if found else None


# ---------------------------------------------------------------------------- checks


def config_mismatch(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two plain config dicts differ, as ``"key: a != b"`` strings."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a:
                out.append(f"{key}: missing != {b[k]!r}")
            elif k not in b:
                out.append(f"{key}: {a[k]!r} != missing")
            else:
                out.extend(config_mismatch(a[k], b[k], key))
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    return [] if a == b else [f"{prefix or '<root>'}: {a!r} != {b!r}"]


# ---------------------------------------------------------------------------- formats


def load_checkpoint_weights(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(model state_dict, valle_config)`` from an inference or a full training checkpoint."""
    return read_model_weights(path)


def checkpoint_extras_of(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``"symbols"`` / ``"codec"`` / ``"codec_embedded"`` entries of a checkpoint file."""
    return checkpoint_extras(load_checkpoint(path))


# ---------------------------------------------------------------------------- averaging


def average_checkpoints(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Elementwise mean of the model weights of ``paths`` (all with the same model config).

    Floating tensors are averaged in float64 and cast back; integer tensors (counters such as
    ``num_batches_tracked``) are taken from the last checkpoint.

    Returns:
        ``(averaged state_dict, valle_config of the last checkpoint)``.
    """
    if not paths:
        raise ValueError("no checkpoints to average")
    first_state, first_cfg = load_checkpoint_weights(paths[0])
    sums = {
        k: v.to(torch.float64) if v.is_floating_point() else v.clone()
        for k, v in first_state.items()
    }
    config = first_cfg
    for p in paths[1:]:
        state, cfg = load_checkpoint_weights(p)
        diff = config_mismatch(first_cfg.get("model"), cfg.get("model"))
        if diff:
            raise CheckpointMismatchError(
                f"{p} has a different model config from {paths[0]} ({'; '.join(diff[:5])}); "
                "only checkpoints of one run (or identical configs) can be averaged"
            )
        if set(state) != set(sums):
            raise CheckpointMismatchError(f"{p} has other weight names than {paths[0]}")
        for k, v in state.items():
            if v.shape != sums[k].shape:
                raise CheckpointMismatchError(
                    f"{p}: {k} has shape {tuple(v.shape)}, {paths[0]} has {tuple(sums[k].shape)}"
                )
            sums[k] = (sums[k] + v.to(torch.float64)) if v.is_floating_point() else v.clone()
        config = cfg
    n = len(paths)
    averaged = {
        k: (v / n).to(first_state[k].dtype) if first_state[k].is_floating_point() else v
        for k, v in sums.items()
    }
    return averaged, config


# ---------------------------------------------------------------------------- callback


class PeriodicCheckpoint(L.Callback):
    """Every ``every_n_steps`` optimizer steps (and at the end) write a full checkpoint and the
    inference checkpoint ``<exp_dir>/model.pt``; keep only the last ``keep_last`` full ones.

    Args:
        exp_dir: experiment directory (``checkpoints/`` and ``model.pt`` go below it).
        every_n_steps: steps between checkpoints; 0 writes only the final one.
        keep_last: full checkpoints to keep; 0 keeps all.
    """

    def __init__(self, exp_dir: str | os.PathLike[str], every_n_steps: int, keep_last: int = 5):
        super().__init__()
        self.exp_dir = Path(exp_dir)
        self.ckpt_dir = self.exp_dir / "checkpoints"
        self.every_n_steps = every_n_steps
        self.keep_last = keep_last
        self._last_saved_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """On rank 0, tidy what a killed run left: temp files, checkpoints beyond ``keep_last``."""
        if stage == "fit" and trainer.is_global_zero:
            self.tidy()

    def tidy(self) -> None:
        """Remove orphan temp files (``.<name>.<token>.tmp``) of the checkpoint directory and
        of ``model.pt`` / ``config.yaml``, and prune the full checkpoints to ``keep_last``.

        A ``kill -9`` between writing a checkpoint and pruning the old ones (or while writing)
        leaves both behind; no writer runs when a run starts, so both are safe to remove.
        """
        remove_stale_temps(self.ckpt_dir)
        for name in ("model.pt", "config.yaml"):
            for p in remove_stale_temps_of(self.exp_dir, name):
                logger.info("removed %s, left by an interrupted run", p)
        self._prune()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            self.save(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step > 0:
            self.save(trainer, pl_module)

    def save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_saved_step:
            return
        path = step_checkpoint_path(self.ckpt_dir, step)
        # every rank calls it; the strategy writes on rank 0
        trainer.save_checkpoint(path, weights_only=False)
        self._last_saved_step = step
        if trainer.is_global_zero:
            model = getattr(pl_module, "model", pl_module)
            save_inference_checkpoint(
                self.exp_dir / "model.pt",
                model.state_dict(),
                getattr(pl_module, "valle_config", {}),
                step=step,
                **getattr(pl_module, "checkpoint_extras", {}),
            )
            logger.info("step %d: saved %s and %s", step, path, self.exp_dir / "model.pt")
            self._prune()

    def _prune(self) -> None:
        if self.keep_last <= 0:
            return
        found = list_step_checkpoints(self.ckpt_dir)
        for _, p in found[: -self.keep_last]:
            p.unlink(missing_ok=True)
            logger.info("removed %s (keep_last_checkpoints=%d)", p, self.keep_last)


def remove_stale_temps_of(directory: Path, name: str) -> list[Path]:
    """Remove the orphan temp files of ``directory / name`` only (other writers may share
    ``directory``)."""
    from valle.io.atomic import TEMP_NAME_RE

    removed = []
    if directory.is_dir():
        for p in directory.iterdir():
            m = TEMP_NAME_RE.match(p.name)
            if m and m.group("target") == name and p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
