"""Typed model configs: frozen dataclasses, strict YAML load/save and dotted overrides.

A config is a tree of frozen dataclasses. Every field carries a ``help`` string in its
metadata (unit or allowed values); :func:`save_yaml` writes it as a comment beside the key,
so a saved config documents itself. Loading is strict: an unknown key is an error that
lists the closest valid keys (``difflib``), never silently ignored.

Composition (DESIGN.md, section 2): a config file is the merge of a *variant* preset
(``valle/conf/variant/<name>.yaml``: which components) and a *size* preset
(``valle/conf/size/<name>.yaml``: how big), plus vocabulary facts read from the data
(``tokens.txt`` and the codec), plus command-line overrides ``"ar.backbone.num_layers=6"``.

Components chosen by type (DESIGN.md, section 2b): a section such as ``layout: {kind: grouped,
group: 2}`` is a :class:`ComponentConfig` family; each kind is its own frozen dataclass,
declared next to the component's code with :func:`register_kind`, holding only the options that
kind reads. Loading picks the dataclass by ``kind`` (a bare string ``layout: grouped`` is the
kind with default settings). A config class may define ``__migrate__(d) -> d`` to turn an
older file layout into the current one before the strict key check (configs travel inside
checkpoints and must keep loading).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

__all__ = [
    "ConfigError",
    "preset_variant",
    "TransformerConfig",
    "VocabConfig",
    "ComponentConfig",
    "register_kind",
    "atomic_write_text",
    "PromptConfig",
    "NARConfig",
    "opt",
    "from_dict",
    "to_dict",
    "load_yaml",
    "save_yaml",
    "dump_yaml",
    "apply_overrides",
    "merge_config_dicts",
    "compose_config",
    "preset_path",
    "vocab_from_data",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file, dict or override does not match the config schema."""


def opt(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = None) -> Any:
    """A dataclass field with a ``help`` text (unit or allowed values) kept in its metadata."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


# --------------------------------------------------------------------------- schemas


@dataclass(frozen=True)
class TransformerConfig:
    """Size of a transformer stack (VALL-E Sec 5.1: 12 layers, 16 heads, d=1024, FFN 4096)."""

    num_layers: int = opt(12, "transformer layers (count)")
    num_heads: int = opt(16, "attention heads per layer (count; must divide d_model)")
    d_model: int = opt(1024, "model width (channels)")
    ffn_dim: int = opt(4096, "feed-forward hidden width (channels)")
    dropout: float = opt(0.1, "dropout probability in [0, 1)")
    attention_dropout: float | None = opt(
        None,
        "dropout on the attention weights in [0, 1); null: the same as dropout. On the CPU a "
        "value > 0 keeps training off SDPA's fused kernel ((B, H, L, K) tensors per layer)",
    )

    def __post_init__(self) -> None:
        if self.num_layers < 1 or self.num_heads < 1 or self.d_model < 1 or self.ffn_dim < 1:
            raise ConfigError(f"transformer sizes must be positive, got {self}")
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise ConfigError(f"attention_dropout must be in [0, 1), got {self.attention_dropout}")
        if self.d_model % self.num_heads:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}; "
                "pick num_heads among the divisors of d_model"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class LocalConvConfig:
    """Local context for a decoder's frames (:class:`valle.modules.local_conv.LocalConvStack`)."""

    layers: int = opt(3, "residual convolution blocks (count)")
    kernel_size: int = opt(5, "frames each convolution sees (odd)")

    def __post_init__(self) -> None:
        if self.layers < 1 or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(
                f"local_convs needs layers >= 1 and an odd kernel_size >= 1, got {self}"
            )


@dataclass(frozen=True)
class VocabConfig:
    """Vocabulary facts read from the data at build time (never constants)."""

    text_vocab_size: int = opt(help="text symbols in tokens.txt, <pad>=0 included (count)")
    codebook_size: int = opt(help="entries per codec codebook (count; from the codec)")
    num_codebooks: int = opt(help="Q, codebooks per frame (count; from the codec)")

    def __post_init__(self) -> None:
        if self.text_vocab_size < 2 or self.codebook_size < 2 or self.num_codebooks < 1:
            raise ConfigError(
                f"implausible vocabulary facts {self}: text_vocab_size and codebook_size must "
                "be >= 2 and num_codebooks >= 1; read them with valle.config.vocab_from_data"
            )


@dataclass(frozen=True)
class PromptConfig:
    """Acoustic prompt policy used when training the NAR (lifeiteng's prefix_mode)."""

    kind: str = opt(
        "same_utterance_prefix",
        "none | same_utterance_prefix | random_segment | other_utterance",
    )
    min_ratio: float = opt(0.25, "shortest prompt as a fraction of the utterance, in [0, 1]")
    max_ratio: float = opt(0.5, "longest prompt as a fraction of the utterance, in [0, 1]")

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_ratio <= self.max_ratio <= 1.0:
            raise ConfigError(
                f"need 0 <= min_ratio <= max_ratio <= 1, got {self.min_ratio}, {self.max_ratio}"
            )

    def build(self) -> Any:
        """The policy (``valle.nar.prompts``) named by ``kind``, with the ratios it reads."""
        from valle.nar.prompts import build_prompt_policy

        return build_prompt_policy(self.kind, self.min_ratio, self.max_ratio)


@dataclass(frozen=True)
class NARConfig:
    """Non-autoregressive decoder for codebooks 2..Q (VALL-E Sec 4.2.2)."""

    backbone: TransformerConfig = opt(help="transformer size", factory=TransformerConfig)
    stage: str = opt("adaln", "stage conditioning: adaln | code_id_token")
    prompt: PromptConfig = opt(help="training prompt policy", factory=PromptConfig)
    local_convs: LocalConvConfig | None = opt(
        None, "residual 1-D convolutions over the frame inputs before the transformer (null: none)"
    )


# --------------------------------------------------------------------------- component sections


@dataclass(frozen=True)
class ComponentConfig:
    """Base of a *family* of component settings chosen by ``kind`` (e.g. all AR layouts).

    A family is a direct subclass that declares its own ``__kinds__ = {}`` and a
    ``build(...)`` signature; each kind subclasses the family, redeclares ``kind`` with its
    name as the default and is registered with :func:`register_kind`.
    """

    __kinds__: ClassVar[dict[str, type]] = {}
    kind: str = opt("", "component kind")

    @classmethod
    def family(cls) -> type[ComponentConfig]:
        """The family class (the subclass of :class:`ComponentConfig` holding ``__kinds__``)."""
        for c in cls.__mro__:
            if "__kinds__" in c.__dict__ and c is not ComponentConfig:
                return c
        raise TypeError(f"{cls.__name__} belongs to no component family")

    @classmethod
    def kind_class(cls, kind: Any, where: str = "") -> type[ComponentConfig]:
        """The registered settings class of ``kind``; unknown kinds list the known ones."""
        kinds = cls.family().__kinds__
        if not isinstance(kind, str) or kind not in kinds:
            near = difflib.get_close_matches(str(kind), list(kinds), n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
            raise ConfigError(
                f"{where or cls.family().__name__}: unknown kind {kind!r}{hint} "
                f"Choose one of: {', '.join(sorted(kinds))}"
            )
        return kinds[kind]


C_ = TypeVar("C_", bound=type)


def register_kind(name: str) -> Any:
    """Class decorator: register a settings dataclass as kind ``name`` of its family."""

    def decorate(cls: C_) -> C_:
        family = cls.family()  # type: ignore[attr-defined]
        default = {f.name: f.default for f in dataclasses.fields(cls)}["kind"]
        if default != name:
            raise TypeError(f"{cls.__name__}.kind must default to {name!r}, got {default!r}")
        old = family.__kinds__.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"{family.__name__} kind {name!r} is already {old.__qualname__}")
        family.__kinds__[name] = cls
        return cls

    return decorate


def _is_family(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, ComponentConfig) and tp is not ComponentConfig


def _kind_section(tp: type[ComponentConfig], value: Any, where: str) -> Any:
    if isinstance(value, ComponentConfig):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected a {tp.__name__}, got {value!r}")
        return value
    if isinstance(value, str):  # a bare kind: its default settings
        value = {"kind": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a kind name or a mapping with 'kind', got {value!r}")
    if "kind" not in value:
        kinds = ", ".join(sorted(tp.family().__kinds__))
        raise ConfigError(f"{where}: missing 'kind' (one of: {kinds})")
    return from_dict(tp.kind_class(value["kind"], f"{where}.kind"), value, _where=where)


# --------------------------------------------------------------------------- dict <-> dataclass


def _close(name: str, options: Iterable[str]) -> str:
    options = list(options)
    near = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    return f"{hint} Valid keys: {', '.join(sorted(options))}"


def _variant_name(cls: type) -> str | None:
    return getattr(cls, "variant_name", None)


def _is_optional(tp: Any) -> tuple[bool, list[Any]]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = list(typing.get_args(tp))
        return type(None) in args, [a for a in args if a is not type(None)]
    return False, [tp]


def _coerce(tp: Any, value: Any, where: str) -> Any:
    optional, options = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: null given but the field is required ({tp})")
    if len(options) != 1:
        raise ConfigError(f"{where}: unions of several types are not supported ({tp})")
    tp = options[0]
    origin = typing.get_origin(tp)
    if _is_family(tp):
        return _kind_section(tp, value, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, _where=where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls: type[T], d: Mapping[str, Any], *, _where: str = "") -> T:
    """Build the dataclass ``cls`` from a nested dict, strictly.

    Unknown keys, missing required keys and values of the wrong type raise
    :class:`ConfigError` naming the dotted key and the closest valid keys. A registered
    variant config also accepts (and checks) a top-level ``variant`` key. A class with a
    ``__migrate__(d) -> d`` hook gets older layouts of its section upgraded first.
    """
    where = _where or cls.__name__
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {d!r}")
    d = dict(d)
    migrate = getattr(cls, "__migrate__", None)
    if migrate is not None:
        d = dict(migrate(d))
    name = _variant_name(cls)
    if "variant" in d and name is not None and not _where:
        given = d.pop("variant")
        if given != name:
            raise ConfigError(f"config says variant {given!r} but is loaded as {name!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in d:
        if key not in fields:
            raise ConfigError(f"unknown key {_join(_where, key)!r}{_close(key, fields)}")
    kwargs = {k: _coerce(hints[k], v, _join(_where, k)) for k, v in d.items()}
    missing = [
        k
        for k, f in fields.items()
        if k not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"{where}: missing required keys {', '.join(_join(_where, k) for k in missing)}"
        )
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if not _where:
            raise
        raise ConfigError(f"{_where}: {e}") from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists); variants get a ``variant`` key."""
    out: dict[str, Any] = {}
    name = _variant_name(type(cfg))
    if name is not None:
        out["variant"] = name
    for f in dataclasses.fields(cfg):
        out[f.name] = _plain(getattr(cfg, f.name))
    return out


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# --------------------------------------------------------------------------- YAML


def _scalar(v: Any) -> str:
    text = yaml.safe_dump(v, default_flow_style=True, width=1 << 30).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")].strip()
    return text


def _emit(cfg: Any, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        help_ = f.metadata.get("help", "")
        comment = f"  # {help_}" if help_ else ""
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:{comment}")
            _emit(value, indent + 1, lines)
        else:
            lines.append(f"{pad}{f.name}: {_scalar(_plain(value))}{comment}")


def dump_yaml(cfg: Any) -> str:
    """YAML text of a config, every key commented with its unit or allowed values."""
    lines = [f"# valle config ({type(cfg).__name__}); load with valle.config.load_yaml"]
    name = _variant_name(type(cfg))
    if name is not None:
        lines.append(f"variant: {name}  # registered model variant (valle.registry)")
    _emit(cfg, 0, lines)
    return "\n".join(lines) + "\n"


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`valle.io.atomic.atomic_write_text`)."""
    from valle.io.atomic import atomic_write_text as write

    write(path, text)


def save_yaml(cfg: Any, path: str | os.PathLike[str]) -> None:
    """Write a config as commented YAML, atomically."""
    atomic_write_text(path, dump_yaml(cfg))


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_yaml(path: str | os.PathLike[str], cls: type[T] | None = None) -> T:
    """Load a config from YAML. Without ``cls`` the file's ``variant`` key picks the class."""
    data = _read_yaml(path)
    if cls is None:
        if "variant" not in data:
            raise ConfigError(
                f"{path} has no 'variant' key; add one (e.g. 'variant: valle') or pass cls="
            )
        from valle.registry import get_variant

        cls = get_variant(data["variant"])
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


# --------------------------------------------------------------------------- overrides


def _field_type(cls: type, key: str, where: str) -> Any:
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if key not in fields:
        hint = ""
        if _is_family(cls):
            section = where.rsplit(".", 1)[0]
            kind = getattr(cls, "kind", "?")
            hint = f" (kind {kind!r} has no {key!r}; set {section}.kind first to change kind)"
        raise ConfigError(f"unknown key {where!r}{hint}{_close(key, fields)}")
    return typing.get_type_hints(cls)[key]


def apply_overrides(cfg: T, overrides: Iterable[str]) -> T:
    """Return a copy of ``cfg`` with dotted ``key=value`` overrides applied, strictly.

    Values are parsed as YAML scalars and coerced to the field's type (``"6"`` -> 6 for an
    int field, ``"1"`` -> 1.0 for a float, the raw text for a str field, ``null`` for an
    optional part). Unknown keys raise :class:`ConfigError` with the closest valid keys.
    """
    data = to_dict(cfg)
    data.pop("variant", None)
    cls = type(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        dotted, raw = item.split("=", 1)
        parts = dotted.strip().split(".")
        node: dict[str, Any] = data
        node_cls: Any = cls
        for i, key in enumerate(parts):
            where = ".".join(parts[: i + 1])
            tp = _field_type(node_cls, key, where)
            if i == len(parts) - 1:
                node[key] = _parse_value(tp, raw.strip())
                if key == "kind" and _is_family(node_cls):
                    # a new kind keeps only the settings it shares with the old one
                    keep = {f.name for f in dataclasses.fields(node_cls.kind_class(node[key]))}
                    for k in [k for k in node if k not in keep]:
                        del node[k]
                break
            _, options = _is_optional(tp)
            if not dataclasses.is_dataclass(options[0]):
                raise ConfigError(f"{where!r} is a value, not a section; cannot set {dotted!r}")
            if node.get(key) is None:
                raise ConfigError(
                    f"{where!r} is null (disabled); enable it in the YAML before setting {dotted!r}"
                )
            sub_cls: Any = options[0]
            if _is_family(sub_cls):
                if isinstance(node[key], str):  # set as a bare kind by an earlier override
                    node[key] = {"kind": node[key]}
                sub_cls = sub_cls.kind_class(node[key].get("kind"), where)
            node, node_cls = node[key], sub_cls
    return from_dict(cls, data)


def _parse_value(tp: Any, raw: str) -> Any:
    optional, options = _is_optional(tp)
    if optional and raw.lower() in ("null", "none", "~"):
        return None
    if options[0] is str:
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse override value {raw!r}: {e}") from e


# --------------------------------------------------------------------------- presets


def preset_path(kind: str, name: str | os.PathLike[str]) -> Path:
    """Path of a shipped preset ``valle/conf/<kind>/<name>.yaml``, or ``name`` if it is a file."""
    if os.path.isfile(name):
        return Path(name)
    base = Path(str(resources.files("valle") / "conf" / kind))
    path = base / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in base.glob("*.yaml"))
        raise ConfigError(
            f"no {kind} preset {str(name)!r}{_close(str(name), names).replace('keys', 'presets')}"
        )
    return path


def preset_variant(name: str) -> str:
    """The registered variant a variant preset builds (``melle_hifigan`` -> ``melle``): the
    ``variant:`` key of ``valle/conf/variant/<name>.yaml`` (or of the YAML file ``name``); a
    name with no preset is returned as it is (a registered name, or one that
    :func:`valle.registry.get_variant` will report)."""
    try:
        path = preset_path("variant", name)
    except ConfigError:
        return name
    named = _read_yaml(path).get("variant")
    return named if isinstance(named, str) else name


def merge_config_dicts(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """``b`` merged over ``a``, recursively (config layers: preset, experiment file, ...).

    A component section whose ``kind`` changes is replaced, not merged: the old kind's
    settings do not carry over to a kind that has no such field.
    """
    out = dict(a)
    for k, v in b.items():
        old = out.get(k)
        if isinstance(v, Mapping) and isinstance(old, Mapping):
            if "kind" in v and v["kind"] != old.get("kind"):
                out[k] = dict(v)
            else:
                out[k] = merge_config_dicts(old, v)
        else:
            out[k] = v
    return out


def compose_config(
    variant: str = "valle",
    size: str = "tiny",
    overrides: Iterable[str] = (),
    *,
    text_vocab_size: int,
    codebook_size: int,
    num_codebooks: int,
) -> Any:
    """Variant preset + size preset + vocabulary facts + overrides -> a variant config.

    ``variant`` and ``size`` name shipped presets (``valle/conf/{variant,size}/``) or are
    paths to YAML files. Vocabulary facts come from the data (:func:`vocab_from_data`).
    """
    from valle.registry import get_variant

    vdata = _read_yaml(preset_path("variant", variant))
    sdata = _read_yaml(preset_path("size", size))
    name = vdata.pop("variant", variant)
    cls = get_variant(name)
    merged = merge_config_dicts(vdata, sdata)
    merged["vocab"] = {
        "text_vocab_size": text_vocab_size,
        "codebook_size": codebook_size,
        "num_codebooks": num_codebooks,
    }
    for section in ("ar", "nar"):
        # a size preset must not resurrect a part the variant disabled
        if section in vdata and vdata[section] is None:
            merged[section] = None
    cfg: Any = from_dict(cls, merged)
    return apply_overrides(cfg, overrides)


def vocab_from_data(tokens_txt: str | os.PathLike[str], codec: Any) -> dict[str, int]:
    """Vocabulary facts from a ``tokens.txt`` and a codec (``valle.codec.base.Codec``).

    Returns keyword arguments for :func:`compose_config`.
    """
    from valle.text.symbol_table import SymbolTable

    table = SymbolTable.from_file(tokens_txt)
    return {
        "text_vocab_size": len(table),
        "codebook_size": int(codec.codebook_size),
        "num_codebooks": int(codec.num_codebooks),
    }
