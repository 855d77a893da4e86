"""A trained model for the checkpoint benchmarks (``valle-bench speed``, ``diagnose``, ``loops``).

Shape legend: none (whole models and manifests).

:func:`load_trained_model` reads a checkpoint once (``valle.io.checkpoint``: weights only) and
gives the model in eval mode on the device with what the checkpoint says about itself: its
config, its symbol table and its frame rate. The frame rate has one source for every
benchmark, :func:`model_frame_rate`:

1. a mel model's own mel frame rate (sample rate / hop; MELLE's 62.5 Hz at 16 kHz / 256);
2. the codec facts the checkpoint carries (``"codec": {"frame_rate": ...}``);
3. ``codec.json`` of ``codec_dir`` (a file or its directory), else of the training config's
   ``data.codec_dir``;

and ``None`` when none of these says. A benchmark on tokenized cuts then takes the cuts' code
frame rate (:func:`frame_rate_or_cuts`); the speed benchmark takes ``--frame-rate`` (75 Hz).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "TrainedModel",
    "frame_rate_or_cuts",
    "load_trained_model",
    "model_frame_rate",
]


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint's model (eval mode, on its device) and its self-description."""

    path: str
    model: nn.Module
    config: dict[str, Any]  # the checkpoint's valle_config
    extras: dict[str, Any]  # its "symbols" / "codec" / "codec_embedded" entries
    frame_rate: float | None  # frames per second (model_frame_rate); None: unknown
    frame_rate_from: str  # where it came from (words, for summaries)

    def symbols(self, tokens: str | os.PathLike[str] | None = None) -> Any:
        """The symbol table: the file ``tokens`` when given, else the checkpoint's own."""
        from valle.text import SymbolTable

        if tokens is not None:
            return SymbolTable.from_file(tokens)
        stored = self.extras.get("symbols")
        if stored is None:
            raise ValueError(f"{self.path} carries no symbol table; pass --tokens data/tokens.txt")
        return SymbolTable(list(stored))


def _codec_json_rate(d: str | os.PathLike[str]) -> float | None:
    f = Path(d) if Path(d).is_file() else Path(d) / "codec.json"
    if not f.is_file():
        return None
    rate = json.loads(f.read_text(encoding="utf-8")).get("frame_rate")
    return float(rate) if rate else None


def model_frame_rate(
    model: nn.Module,
    extras: dict[str, Any],
    config: dict[str, Any],
    codec_dir: str | os.PathLike[str] | None = None,
) -> tuple[float | None, str]:
    """Frames per second of what the model's AR makes, and where that came from (see the
    module docstring); ``(None, reason)`` when nothing says."""
    mel: Any = getattr(getattr(model, "config", None), "mel", None)
    if mel is not None:
        return float(mel.sample_rate / mel.hop_length), "the model's mel frames"
    spec = extras.get("codec")
    if isinstance(spec, dict) and spec.get("frame_rate"):
        return float(spec["frame_rate"]), "the checkpoint's codec facts"
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    for d, where in ((codec_dir, "--codec-dir"), ((data or {}).get("codec_dir"), "data.codec_dir")):
        if d and (rate := _codec_json_rate(d)) is not None:
            return rate, f"codec.json of {where} {d}"
    return None, "no codec facts in the checkpoint and no codec.json"


def load_trained_model(
    path: str | os.PathLike[str],
    device: str = "cpu",
    codec_dir: str | os.PathLike[str] | None = None,
    need_ar: str | None = None,
) -> TrainedModel:
    """Read ``path`` once and rebuild its model (eval mode, on ``device``).

    ``need_ar``: what the caller does with the AR, for the error when the model has none.
    """
    from valle.io.checkpoint import checkpoint_extras, load_checkpoint, model_from_checkpoint

    obj = load_checkpoint(path)  # weights only, read once
    model, config = model_from_checkpoint(obj, path)
    model = model.to(device).eval()
    if need_ar is not None and getattr(model, "ar", None) is None:
        raise ValueError(f"{path}: the model has no AR decoder; {need_ar}")
    extras = checkpoint_extras(obj)
    rate, source = model_frame_rate(model, extras, config, codec_dir)
    return TrainedModel(str(path), model, config, extras, rate, source)


def frame_rate_or_cuts(trained: TrainedModel, cut: Any) -> tuple[float, str]:
    """The model's frame rate, else the code frame rate of a tokenized ``cut``."""
    if trained.frame_rate is not None:
        return trained.frame_rate, trained.frame_rate_from
    from valle.data.prompt import frame_rate_of

    return frame_rate_of(cut), "the cuts' codes (the checkpoint has no codec facts)"
