"""Reading checkpoints safely, and the inference checkpoint format.

Shape legend: none (weights are whole tensors keyed by name).

A ``.pt``/``.ckpt`` file is a pickle; unpickling an arbitrary pickle runs arbitrary code. Every
checkpoint in valle is therefore read by :func:`load_checkpoint` and nothing else:
``torch.load(weights_only=True)`` with a short allow-list (:data:`ALLOWED_GLOBALS`: the numpy
array types of the RNG states in full training checkpoints). A file that needs anything else
is refused with :class:`UntrustedCheckpointError`, naming the file and the refused types; it is
never retried with ``weights_only=False``. ``tools/convert_untrusted_checkpoint.py`` rewrites a
file you trust into the safe form (docs/trust_and_safety.md).

Two formats (both plain dicts):

- inference checkpoint ``<exp>/model.pt``: ``{"format": "valle-inference", "valle_config",
  "state_dict" (model weights), "step", "symbols" (tokens.txt in id order), "codec" (codec
  facts), "codec_embedded" (the small codec's own tensors, when it has any)}``;
- full Lightning checkpoint ``<exp>/checkpoints/step-*.ckpt``: weights under ``"model."`` in
  ``"state_dict"``, optimizer, loops, RNG states and the same ``"valle_config"``.

This module does not import Lightning: inference, benchmarks, tools and training all use it.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from valle.io.atomic import atomic_torch_save

logger = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_GLOBALS",
    "CODEC_EMBEDDED_KEY",
    "CODEC_KEY",
    "CONFIG_KEY",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointPathError",
    "CorruptCheckpointError",
    "EXTRA_KEYS",
    "INFERENCE_FORMAT",
    "LIGHTNING_MODEL_PREFIX",
    "SYMBOLS_KEY",
    "UntrustedCheckpointError",
    "build_model_from_checkpoint",
    "check_state_dict",
    "fill_state_defaults",
    "checkpoint_extras",
    "checkpoint_path",
    "load_checkpoint",
    "load_weights",
    "model_config_from",
    "model_from_checkpoint",
    "model_weights",
    "read_model_weights",
    "save_inference_checkpoint",
    "strip_prefix",
]

INFERENCE_FORMAT = "valle-inference"
CONFIG_KEY = "valle_config"
SYMBOLS_KEY = "symbols"  # list[str], the symbol table in id order
CODEC_KEY = "codec"  # CodecInfo fields (name, facts, path, options, fingerprint)
CODEC_EMBEDDED_KEY = "codec_embedded"  # {"name", "payload"}: a small codec's own tensors
EXTRA_KEYS = (SYMBOLS_KEY, CODEC_KEY, CODEC_EMBEDDED_KEY)  # copied into derived checkpoints
LIGHTNING_MODEL_PREFIX = "model."  # TrainingModule keeps the model as ``self.model``

CONVERT_HINT = (
    "If you trust where this file comes from, rewrite it into the safe form with "
    "`python tools/convert_untrusted_checkpoint.py --i-trust-this-file IN OUT` "
    "(docs/trust_and_safety.md); otherwise do not use it"
)


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and says what to do."""


class UntrustedCheckpointError(CheckpointError):
    """The file needs more than tensors and plain containers to unpickle: it may run code."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated or corrupt (or not a PyTorch file at all)."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint does not fit the model or config it is loaded into."""


class CheckpointPathError(FileNotFoundError):
    """The checkpoint path names no file (missing, or a directory)."""


def _numpy_globals() -> list[Any]:
    """numpy arrays (``np.random.get_state()`` in ``valle_rng_states``) rebuilt from raw bytes.

    ``_reconstruct`` only allocates an array of an allowed class; the dtype and the data come
    from the pickle, and object dtypes would still have to unpickle their items through the
    same restricted unpickler.
    """
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency of torch here
        return []
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    out: list[Any] = [
        np.ndarray,
        np.dtype,
        _reconstruct,
        (_reconstruct, "numpy.core.multiarray._reconstruct"),  # written by numpy < 2
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
    ]
    for t in (np.uint32, np.int64, np.int32, np.float64, np.float32, np.bool_):
        out.append(type(np.dtype(t)))  # numpy.dtypes.UInt32DType, ... (numpy >= 1.25)
    return out


ALLOWED_GLOBALS: list[Any] = _numpy_globals()


def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, after checking that it names a file; clear errors otherwise."""
    p = Path(path)
    if p.is_dir():
        candidates = [p / "model.pt"] if (p / "model.pt").is_file() else []
        candidates += (
            sorted(p.glob("step-*.ckpt"))[-1:] + sorted(p.glob("checkpoints/step-*.ckpt"))[-1:]
        )
        hint = (
            f"; did you mean {candidates[0]}?"
            if candidates
            else "; pass the checkpoint file inside it (<exp>/model.pt)"
        )
        raise CheckpointPathError(f"checkpoint {p} is a directory, not a checkpoint file{hint}")
    if not p.exists():
        raise CheckpointPathError(f"checkpoint {p} does not exist; check the path")
    if not p.is_file():
        raise CheckpointPathError(f"checkpoint {p} is not a regular file")
    return p


def _corrupt(p: Path, why: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"checkpoint {p} is truncated or corrupt ({why}); it was probably cut short by a full "
        "disk or an interrupted copy. Copy it again, or use an older checkpoint of the run "
        "(<exp>/checkpoints/step-*.ckpt)"
    )


def _untrusted(p: Path, what: str) -> UntrustedCheckpointError:
    return UntrustedCheckpointError(
        f"checkpoint {p} is not trusted: it holds {what}, which only a full unpickling could "
        "rebuild, and unpickling can run arbitrary code. valle loads checkpoints with "
        f"weights_only=True and refuses anything else. {CONVERT_HINT}"
    )


def _is_truncation(err: BaseException) -> bool:
    return isinstance(err, EOFError) or "truncated" in str(err) or "Ran out of input" in str(err)


def _refusal(err: BaseException) -> str:
    """The line of torch's weights_only message that says what was refused."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or "Unsupported" in ln or "unrecognized" in ln or "error:" in ln:
            return ln.split("error:")[-1].strip()
    return lines[-1] if lines else type(err).__name__


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: Any = "cpu",
    mmap: bool = False,
) -> dict[str, Any]:
    """Read a checkpoint file safely (weights only, :data:`ALLOWED_GLOBALS`).

    Args:
        path: a ``.pt``/``.ckpt`` file written by ``torch.save``.
        map_location: as for ``torch.load``.
        mmap: memory-map the tensors (zip-format files only; others are read normally).

    Raises:
        CheckpointPathError: missing file, or a directory (the message suggests the file in it).
        UntrustedCheckpointError: the file needs types outside the allow-list.
        CorruptCheckpointError: truncated or corrupt file, or not a PyTorch file.
        CheckpointError: the file holds no dict.
    """
    p = checkpoint_path(path)
    size = p.stat().st_size
    if size == 0:
        raise _corrupt(p, "the file is empty")
    is_zip = zipfile.is_zipfile(p)
    if is_zip:
        try:  # a static scan: names every refused type before anything is unpickled
            with torch.serialization.safe_globals(ALLOWED_GLOBALS):
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(p)
        except pickle.UnpicklingError:  # an opcode the scan does not know: the load decides
            unsafe = []
        except Exception as err:  # noqa: BLE001 - the archive or its pickle cannot be read
            raise _corrupt(p, _first_line(err)) from None
        if unsafe:
            raise _untrusted(p, "the type(s) " + ", ".join(sorted(unsafe)))
    else:
        with open(p, "rb") as f:
            head = f.read(2)
        if head == b"PK":  # a zip archive without its end record: cut short
            raise _corrupt(p, f"the zip archive ends early ({size} bytes, no end record)")
        if head[:1] != b"\x80":  # neither a zip (torch >= 1.6) nor a legacy pickle
            raise _corrupt(p, "not a PyTorch checkpoint: no zip archive and no pickle header")
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            obj = torch.load(p, map_location=map_location, weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as err:  # weights_only refused something, or a cut pickle
        if _is_truncation(err):
            raise _corrupt(p, _first_line(err)) from None
        raise _untrusted(p, f"something weights_only refuses ({_refusal(err)})") from None
    except OSError:  # permissions, I/O errors: the OS message is the clear one
        raise
    except Exception as err:  # noqa: BLE001 - anything else while decoding = a damaged file
        raise _corrupt(p, _first_line(err)) from None
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{p} is not a valle checkpoint (it holds a {type(obj).__name__}, not a dict); pass "
            "<exp>/model.pt or <exp>/checkpoints/step-*.ckpt"
        )
    return obj


def strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of ``state`` whose names start with ``prefix``, without it."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def model_weights(
    obj: Mapping[str, Any], source: str | os.PathLike[str]
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(model state_dict, valle_config)`` of a loaded inference or full training checkpoint."""
    config = obj.get(CONFIG_KEY)
    if not isinstance(config, Mapping):
        raise CheckpointMismatchError(
            f"{source} has no '{CONFIG_KEY}' entry; it was not written by valle-train. Pass an "
            "inference checkpoint (<exp>/model.pt) or a checkpoint of <exp>/checkpoints/"
        )
    state = obj.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(f"{source} has no state_dict")
    if obj.get("format") != INFERENCE_FORMAT:  # Lightning: the weights are under "model."
        state = strip_prefix(state, LIGHTNING_MODEL_PREFIX)
        if not state:
            raise CheckpointMismatchError(f"{source} holds no '{LIGHTNING_MODEL_PREFIX}*' weights")
    return dict(state), dict(config)


def read_model_weights(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(model state_dict, valle_config)`` from a checkpoint file."""
    return model_weights(load_checkpoint(path), path)


def checkpoint_extras(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The self-description entries (:data:`EXTRA_KEYS`) a loaded checkpoint has."""
    return {k: obj[k] for k in EXTRA_KEYS if k in obj}


def fill_state_defaults(model: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` plus the entries a checkpoint saved before they existed lacks, where the model
    can default them: a submodule with ``state_defaults()`` (buffer name -> tensor) fills its
    missing ones (e.g. the duration predictor's ``log_variance``: NaN keeps the old behaviour).
    Weights are never defaulted: a missing weight stays a mismatch."""
    out = dict(state)
    for prefix, module in model.named_modules():
        defaults = getattr(module, "state_defaults", None)
        if defaults is None:
            continue
        for name, value in defaults().items():
            out.setdefault(f"{prefix}.{name}" if prefix else name, value)
    return out


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
        "(valle.io.checkpoint.build_model_from_checkpoint) or pass the matching --config/--set"
    )


def load_weights(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly (after :func:`fill_state_defaults`), with a clear
    error on any mismatch."""
    state = fill_state_defaults(model, state)
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)


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


def model_from_checkpoint(
    obj: Mapping[str, Any],
    source: str | os.PathLike[str],
    overrides: Sequence[str] = (),
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from the config inside a loaded checkpoint and load its weights.

    ``overrides``: ``"key=value"`` settings of the model config applied before the model is
    built (``ar.stop.threshold=0.9``, ``ar.sampler.top_p=0.8``): inference settings; one that
    changes a weight's shape fails in the weight check, naming the parameter. The returned
    config has them applied too.
    """
    from valle.config import apply_overrides, to_dict
    from valle.registry import build_model

    state, config = model_weights(obj, source)
    model_cfg = model_config_from(config)
    if overrides:
        model_cfg = apply_overrides(model_cfg, overrides)
        config = {**config, "model": to_dict(model_cfg)}
    model = build_model(model_cfg)
    try:
        load_weights(model, state, source=str(source))
    except CheckpointMismatchError as err:
        if not overrides:
            raise
        raise CheckpointMismatchError(
            f"the model settings {list(overrides)} change the model's weights, so the "
            f"checkpoint's weights no longer fit; override inference settings only (stop "
            f"threshold, sampler, length bound). {err}"
        ) from None
    return model, config


def build_model_from_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from the config inside a checkpoint file (eval mode).

    Returns:
        ``(model, valle_config)``.
    """
    model, config = model_from_checkpoint(load_checkpoint(path), path)
    return model.to(map_location).eval(), config


def save_inference_checkpoint(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, Tensor],
    valle_config: Mapping[str, Any],
    step: int | None = None,
    **meta: Any,
) -> Path:
    """Write model weights + config (+ ``meta``: symbols, codec) atomically: ``<exp>/model.pt``."""
    obj = {
        "format": INFERENCE_FORMAT,
        CONFIG_KEY: dict(valle_config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "step": step,
        **meta,
    }
    return atomic_torch_save(path, obj)
