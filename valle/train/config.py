"""Training and data configs, and the experiment config bundling them with a model config.

An experiment is ``ExperimentConfig(model=<variant config>, train=TrainConfig, data=DataConfig)``.
The model part is made by the model core (``valle.config.compose_config``: variant preset + size
preset + vocabulary facts); this module owns the ``train`` and ``data`` sections and reuses the
strict loading, dotted overrides and commented YAML of :mod:`valle.config`. The resolved
experiment is written to ``<exp_dir>/config.yaml`` and inside every checkpoint (key
``valle_config``), so a checkpoint alone rebuilds the model (DESIGN.md, section 2).

Experiment YAML files (``--config``) have up to three sections, every key optional::

    model:   {...}   # overrides of the variant/size model config, e.g. ar: {backbone: ...}
    train:   {...}   # TrainConfig fields
    data:    {...}   # DataConfig fields

Command-line overrides: ``train.lr=1e-3``, ``data.num_workers=0``, ``model.ar.mask=causal``
or, for the model, without the prefix: ``ar.backbone.num_layers=6``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from valle.config import (
    ConfigError,
    apply_overrides,
    atomic_write_text,
    compose_config,
    dump_yaml,
    from_dict,
    merge_config_dicts,
    opt,
    to_dict,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ConfigError",
    "DECAYS",
    "PRECISIONS",
    "DataConfig",
    "ExperimentConfig",
    "TrainConfig",
    "compose_data",
    "compose_experiment",
    "dump_experiment_yaml",
    "experiment_from_dict",
    "experiment_to_dict",
    "load_experiment",
    "parse_stages",
    "save_experiment",
    "split_overrides",
]

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
DECAYS = ("cosine", "inverse_sqrt", "linear", "constant")
PROMPTS = ("same_speaker", "prefix", "none")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of one training run (all counts are optimizer steps).

    The learning-rate schedule is a linear warmup from ``lr / warmup_steps`` to ``lr`` over
    ``warmup_steps`` updates, then ``decay``: ``cosine`` (half cosine down to
    ``lr * min_lr_ratio`` at ``max_steps``), ``linear`` (straight line to the same floor;
    VALL-E, sec. 5.1), ``inverse_sqrt`` (``lr * sqrt(warmup_steps / step)``) or ``constant``.
    """

    lr: float = opt(5e-4, "peak learning rate after warmup (AdamW)")
    betas: tuple[float, float] = opt((0.9, 0.95), "AdamW [beta1, beta2]")
    eps: float = opt(1e-8, "AdamW epsilon")
    weight_decay: float = opt(
        0.01, "AdamW decoupled weight decay (matrices only, not norms/biases)"
    )
    warmup_steps: int = opt(200, "linear warmup length (optimizer steps)")
    decay: str = opt("cosine", "lr decay after warmup: cosine | linear | inverse_sqrt | constant")
    min_lr_ratio: float = opt(0.0, "final lr / peak lr for cosine and linear decay, in [0, 1]")
    max_steps: int = opt(10000, "length of the run (optimizer steps)")
    precision: str = opt("32", "numeric precision: 32 | bf16-mixed | 16-mixed")
    activation_checkpointing: bool = opt(
        False,
        "recompute each transformer layer's activations in the backward pass (less memory, "
        "about one more forward of compute; same loss and gradients): true | false",
    )
    grad_clip: float = opt(1.0, "max global L2 norm of the gradients; 0 disables clipping")
    max_duration: float = opt(100.0, "target audio per batch per device (seconds)")
    num_buckets: int = opt(10, "duration buckets of the dynamic bucketing sampler (count)")
    stages: tuple[str, ...] = opt(("ar", "nar"), "model parts to train: [ar], [nar] or [ar, nar]")
    log_every: int = opt(50, "steps between scalar logs (optimizer steps)")
    val_every_n_steps: int = opt(1000, "steps between dev-set losses; 0 disables validation")
    limit_val_batches: int = opt(20, "dev batches per validation (count)")
    checkpoint_every_n_steps: int = opt(1000, "steps between full checkpoints; 0: only at the end")
    keep_last_checkpoints: int = opt(5, "full checkpoints kept on disk (count); 0 keeps all")
    sample_every_n_steps: int = opt(1000, "steps between logged audio samples; 0 disables")
    seed: int = opt(42, "seed of the model init, the sampler order and per-step randomness")

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision={self.precision!r}; use one of {PRECISIONS}")
        if self.decay not in DECAYS:
            raise ConfigError(f"train.decay={self.decay!r}; use one of {DECAYS}")
        if not self.stages:
            raise ConfigError("train.stages is empty; name the model parts to train")
        if len(set(self.stages)) != len(self.stages):
            raise ConfigError(f"train.stages={list(self.stages)} repeats a stage")
        for name in ("max_steps", "log_every", "num_buckets", "limit_val_batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "warmup_steps",
            "val_every_n_steps",
            "checkpoint_every_n_steps",
            "keep_last_checkpoints",
            "sample_every_n_steps",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if self.max_duration <= 0:
            raise ConfigError(f"train.max_duration must be > 0 seconds, got {self.max_duration}")
        if self.grad_clip < 0:
            raise ConfigError(f"train.grad_clip must be >= 0, got {self.grad_clip}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio={self.min_lr_ratio} must lie in [0, 1]")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"train.betas={list(self.betas)} must be two numbers in [0, 1)")


@dataclass(frozen=True)
class DataConfig:
    """Where the tokenized data lives and how it is loaded (paths relative to the cwd)."""

    train_cuts: str = opt(
        "", "tokenized training cuts (data/tokenized/<corpus>_cuts_train.jsonl.gz)"
    )
    dev_cuts: str = opt("", "tokenized dev cuts for validation and logged samples; empty: none")
    tokens: str = opt("", "symbol table tokens.txt written by the tokenize stage")
    codec_dir: str = opt("", "directory with codec.json (codec facts; decodes logged samples)")
    num_workers: int = opt(2, "dataloader worker processes (count); 0 loads in the main process")
    shuffle: bool = opt(True, "shuffle the training cuts (seeded by train.seed and the epoch)")
    prompt: str = opt(
        "same_speaker",
        "where prompt_codes come from when the model reads another utterance "
        "(nar.prompt.kind=other_utterance): same_speaker (crop of another utterance) | "
        "prefix (own prefix, left out of the loss) | none",
    )
    prompt_seconds: float = opt(3.0, "acoustic prompt length for training batches (seconds)")

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.prompt not in PROMPTS:
            raise ConfigError(f"data.prompt={self.prompt!r}; use one of {PROMPTS}")
        if self.prompt_seconds <= 0:
            raise ConfigError(f"data.prompt_seconds must be > 0, got {self.prompt_seconds}")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything needed to reproduce a run: the model config plus train and data sections."""

    model: Any  # a registered variant config (valle.registry)
    train: TrainConfig = opt(help="optimisation and bookkeeping", factory=TrainConfig)
    data: DataConfig = opt(help="data locations and loading", factory=DataConfig)

    def __post_init__(self) -> None:
        declared = getattr(type(self.model), "stages", None)  # the variant's one list
        if declared and any(s not in declared for s in self.train.stages):
            raise ConfigError(
                f"train.stages={list(self.train.stages)}; this model's stages are "
                f"{list(declared)} (a non-empty subset of them)"
            )


# ---------------------------------------------------------------------------- plain dicts


def experiment_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dict (what checkpoints store under ``valle_config``)."""
    return {"model": to_dict(cfg.model), "train": to_dict(cfg.train), "data": to_dict(cfg.data)}


def experiment_from_dict(d: Mapping[str, Any]) -> ExperimentConfig:
    """Inverse of :func:`experiment_to_dict`; the model section needs its ``variant`` key."""
    from valle.registry import get_variant

    unknown = sorted(set(d) - {"model", "train", "data"})
    if unknown:
        raise ConfigError(f"unknown experiment section(s) {unknown}; use model, train, data")
    model = d.get("model")
    if not isinstance(model, Mapping) or "variant" not in model:
        raise ConfigError("the experiment's model section needs a 'variant' key")
    return ExperimentConfig(
        model=from_dict(get_variant(model["variant"]), model),
        train=from_dict(TrainConfig, d.get("train") or {}, _where="train"),
        data=from_dict(DataConfig, d.get("data") or {}, _where="data"),
    )


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" if line else "\n" for line in text.splitlines())


def dump_experiment_yaml(cfg: ExperimentConfig) -> str:
    """Commented YAML of an experiment (each key with its unit or allowed values)."""

    def body(section: Any) -> str:
        return "\n".join(dump_yaml(section).splitlines()[1:])  # drop the header comment

    return (
        "# valle experiment config (resolved); load with valle.train.config.load_experiment\n"
        f"model:  # {type(cfg.model).__name__}\n{_indent(body(cfg.model))}"
        f"train:  # TrainConfig\n{_indent(body(cfg.train))}"
        f"data:  # DataConfig\n{_indent(body(cfg.data))}"
    )


def save_experiment(cfg: ExperimentConfig, path: str | os.PathLike[str]) -> Path:
    """Write the experiment YAML atomically; returns the path."""
    atomic_write_text(path, dump_experiment_yaml(cfg))
    return Path(path)


def load_experiment(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read an experiment YAML written by :func:`save_experiment`."""
    return experiment_from_dict(_read_sections(path))


# ---------------------------------------------------------------------------- composition


def _read_sections(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the --config path")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping with model/train/data sections")
    unknown = sorted(set(data) - {"model", "train", "data"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level section(s) {unknown}; an experiment config has only "
            "model, train and data sections"
        )
    return data


def _deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    # a component section that changes kind is replaced (valle.config.merge_config_dicts)
    return merge_config_dicts(a, b)


_EXPONENT_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _normalize_number(item: str) -> str:
    """``lr=1e-3`` -> ``lr=0.001``: YAML 1.1 reads ``1e-3`` (no dot) as text, not a float."""
    key, _, value = item.partition("=")
    if _EXPONENT_FLOAT.match(value.strip()):
        return f"{key}={float(value)!r}"
    return item


def split_overrides(overrides: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """Sort ``key=value`` overrides into (model, train, data) lists, prefixes removed.

    Numbers in exponent notation are normalised (``1e-3`` -> ``0.001``) so that YAML parses
    them as floats.
    """
    model: list[str] = []
    train: list[str] = []
    data: list[str] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} must look like key.path=value, e.g. train.lr=1e-3 or "
                "ar.backbone.num_layers=6"
            )
        item = _normalize_number(item)
        head, _, rest = item.partition(".")
        target = {"train": train, "data": data, "model": model}.get(head)
        if target is not None and rest:
            target.append(rest)
        else:
            model.append(item)
    return model, train, data


def parse_stages(text: str, variant: str = "valle") -> tuple[str, ...]:
    """``"ar,nar"`` -> ``("ar", "nar")``, validated against the stages ``variant`` declares
    (:func:`valle.registry.variant_stages`; a preset path is checked later, with the model)."""
    from valle.registry import UnknownVariantError, variant_stages

    stages = tuple(s.strip() for s in text.split(",") if s.strip())
    try:
        allowed: tuple[str, ...] | None = variant_stages(variant)
    except UnknownVariantError:
        allowed = None
    if not stages or (allowed is not None and any(s not in allowed for s in stages)):
        names = list(allowed) if allowed is not None else "the model's stages"
        eg = ",".join(allowed) if allowed is not None else "ar,nar"
        raise ConfigError(f"--stages {text!r}: give a comma list of {names}, e.g. {eg}")
    return stages


def compose_data(
    config_files: Sequence[str | os.PathLike[str]] = (), overrides: Iterable[str] = ()
) -> DataConfig:
    """Only the data section of what :func:`compose_experiment` would build (no model).

    The model needs vocabulary facts read from the data, so the data paths are resolved first.
    """
    sections: dict[str, Any] = {}
    for path in config_files:
        sections = _deep_merge(sections, _read_sections(path))
    _, _, data_ovr = split_overrides(overrides)
    return apply_overrides(
        from_dict(DataConfig, sections.get("data") or {}, _where="data"), data_ovr
    )


def compose_experiment(
    variant: str,
    size: str,
    config_files: Sequence[str | os.PathLike[str]] = (),
    overrides: Iterable[str] = (),
    *,
    text_vocab_size: int,
    codebook_size: int,
    num_codebooks: int,
) -> ExperimentConfig:
    """Variant + size presets, then each ``--config`` file in order, then ``--set`` overrides.

    Args:
        variant, size: preset names or YAML paths (``valle.config.compose_config``).
        config_files: experiment YAMLs with optional model/train/data sections.
        overrides: dotted ``key=value`` strings (see :func:`split_overrides`).
        text_vocab_size, codebook_size, num_codebooks: vocabulary facts from the data
            (``valle.config.vocab_from_data``).
    """
    sections: dict[str, Any] = {}
    for path in config_files:
        sections = _deep_merge(sections, _read_sections(path))
    model_ovr, train_ovr, data_ovr = split_overrides(overrides)
    model_cfg = compose_config(
        variant,
        size,
        (),
        text_vocab_size=text_vocab_size,
        codebook_size=codebook_size,
        num_codebooks=num_codebooks,
    )
    file_model = dict(sections.get("model") or {})
    given = file_model.pop("variant", None)
    if given is not None and given != type(model_cfg).variant_name:
        raise ConfigError(
            f"--config says variant {given!r} but --variant is {type(model_cfg).variant_name!r}"
        )
    if file_model:
        merged = _deep_merge(to_dict(model_cfg), file_model)
        model_cfg = from_dict(type(model_cfg), merged)
    model_cfg = apply_overrides(model_cfg, model_ovr)
    train_cfg = apply_overrides(
        from_dict(TrainConfig, sections.get("train") or {}, _where="train"), train_ovr
    )
    data_cfg = apply_overrides(
        from_dict(DataConfig, sections.get("data") or {}, _where="data"), data_ovr
    )
    return ExperimentConfig(model=model_cfg, train=train_cfg, data=data_cfg)


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that re-runs validation (frozen configs)."""
    return dataclasses.replace(cfg, **changes)
