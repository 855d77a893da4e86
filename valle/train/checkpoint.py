"""Checkpoint files: atomic writes, resumable and inference formats, loading, averaging.

Two formats live in an experiment directory::

    <exp_dir>/config.yaml                     resolved experiment config (model/train/data)
    <exp_dir>/checkpoints/step-00001000.ckpt  full Lightning checkpoint (resumable): weights,
                                              optimizer, scheduler, loop and data positions,
                                              RNG states and "valle_config"
    <exp_dir>/model.pt                        inference checkpoint of the latest step:
                                              {"format": "valle-inference", "valle_config",
                                               "state_dict" (model weights), "step",
                                               "symbols" (tokens.txt in id order),
                                               "codec" (codec.json facts)}

``load_checkpoint_weights`` reads either; ``build_model_from_checkpoint`` rebuilds the model
from the config stored inside, so a checkpoint alone is enough for inference (DESIGN.md, 2).
Every file is written to a temp file in the same directory and moved into place with
``os.replace``, so a crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor, nn

logger = logging.getLogger(__name__)

INFERENCE_FORMAT = "valle-inference"
CONFIG_KEY = "valle_config"
_STEP_RE = re.compile(r"^step-(\d+)\.ckpt$")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model or config it is loaded into."""


# ---------------------------------------------------------------------------- atomic IO


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temp file beside ``path``, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO writing local checkpoints atomically (temp file + rename)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(checkpoint, path)


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


def check_state_dict(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Raise :class:`CheckpointMismatchError` naming keys whose presence or shape differ."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es), e.g. {'; '.join(shapes[:3])}")
    if missing:
        parts.append(f"{len(missing)} weight(s) missing from it, e.g. {missing[:3]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected weight(s), e.g. {unexpected[:3]}")
    raise CheckpointMismatchError(
        f"{source} does not fit the model: {'; '.join(parts)}. The checkpoint was made with a "
        "different model config; build the model from the config stored in the checkpoint "
        "(valle.train.checkpoint.build_model_from_checkpoint) or pass the matching --config/--set"
    )


def load_weights(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly, with a clear error on any mismatch."""
    check_state_dict(model, state, source)
    model.load_state_dict(dict(state), strict=True)


# ---------------------------------------------------------------------------- formats


def save_inference_checkpoint(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, Tensor],
    valle_config: Mapping[str, Any],
    step: int | None = None,
    **meta: Any,
) -> Path:
    """Write model weights + config only (what ``Synthesizer.from_checkpoint`` loads)."""
    obj = {
        "format": INFERENCE_FORMAT,
        CONFIG_KEY: dict(valle_config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "step": step,
        **meta,
    }
    return atomic_torch_save(obj, path)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; check the path")
    try:  # inference checkpoints are plain tensors + dicts
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # full Lightning checkpoints carry RNG states (numpy arrays, tuples)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, dict):
        raise CheckpointMismatchError(f"{path} is not a valle checkpoint (not a dict)")
    return obj


def load_checkpoint_weights(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(model state_dict, valle_config)`` from an inference or a full training checkpoint."""
    path = Path(path)
    obj = _read(path)
    config = obj.get(CONFIG_KEY)
    if config is None:
        raise CheckpointMismatchError(
            f"{path} has no '{CONFIG_KEY}' entry; it was not written by valle-train"
        )
    state = obj.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(f"{path} has no state_dict")
    if obj.get("format") != INFERENCE_FORMAT:  # Lightning: weights are under "model."
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
        if not state:
            raise CheckpointMismatchError(f"{path} holds no 'model.*' weights")
    return dict(state), dict(config)


EXTRA_KEYS = ("symbols", "codec")  # self-description entries copied into derived checkpoints


def checkpoint_extras_of(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``"symbols"`` / ``"codec"`` entries of a checkpoint (those it has)."""
    obj = _read(Path(path))
    return {k: obj[k] for k in EXTRA_KEYS if k in obj}


def model_config_from(valle_config: Mapping[str, Any]) -> Any:
    """The variant config object stored in a checkpoint's ``valle_config["model"]``."""
    from valle.config import from_dict
    from valle.registry import get_variant

    model = valle_config.get("model")
    if not isinstance(model, Mapping) or "variant" not in model:
        raise CheckpointMismatchError(
            "the checkpoint's valle_config has no model section with a 'variant' key"
        )
    return from_dict(get_variant(model["variant"]), model)


def build_model_from_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from the config inside a checkpoint and load its weights (eval mode).

    Returns:
        ``(model, valle_config)``.
    """
    from valle.registry import build_model

    state, config = load_checkpoint_weights(path)
    model = build_model(model_config_from(config))
    load_weights(model, state, source=str(path))
    return model.to(map_location).eval(), config


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
