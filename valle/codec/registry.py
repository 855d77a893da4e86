"""Codec registry: ``@register_codec("mel_rvq")`` on a loader class, looked up by name.

A codec is recorded in ``codec.json`` and in checkpoints by name, path and options
(:class:`valle.data.codec_info.CodecInfo`). Each registered loader knows how to

- ``load(path, device, **options)``: build the codec from its files (a local directory or,
  for EnCodec, a hub id);
- ``is_remote(path)``: whether a path that is not on this machine names something the loader
  fetches itself (an EnCodec hub id such as ``facebook/encodec_24khz``);
- ``recognize(directory)``: whether a directory holds its files, and the options to load it
  with (``None``: not mine), so a bare codec directory can be loaded without guessing;
- ``embed(codec)``: the codec's own tensors and settings as a plain dict of tensors, strings
  and numbers, small enough to travel inside an inference checkpoint (``None``: too large,
  keep a path; EnCodec is hundreds of MB and comes from ``transformers``);
- ``from_embedded(payload, device)``: the codec back from ``embed``'s dict.

New codecs register themselves in their own module; the built-in ones (``mel_rvq``,
``encodec`` and their merged forms ``mel_rvq_merged``, ``encodec_merged`` for VALL-E R, see
:mod:`valle.codec.merging`) are imported on first lookup.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from valle.codec.base import Codec

__all__ = [
    "CodecLoader",
    "UnknownCodecError",
    "codec_from_embedded",
    "embed_codec",
    "get_codec_loader",
    "is_embeddable",
    "load_codec",
    "read_codec_choice",
    "recognize_codec_dir",
    "register_codec",
    "registered_codecs",
]

_BUILTIN_MODULES = ("valle.codec.mel_rvq", "valle.codec.encodec", "valle.codec.merging")
_LOADERS: dict[str, CodecLoader] = {}
_builtins_loaded = False


class UnknownCodecError(ValueError):
    """A codec name nobody registered; the message lists the registered ones."""


class CodecLoader(Protocol):
    """What ``@register_codec`` expects of a loader class (instantiated without arguments)."""

    name: str
    embeddable: bool  # whether ``embed`` gives a payload (small codecs)

    def load(self, path: str, device: str = "cpu", **options: Any) -> Codec: ...

    def is_remote(self, path: str) -> bool: ...

    def recognize(self, directory: Path) -> dict[str, Any] | None: ...

    def embed(self, codec: Codec) -> dict[str, Any] | None: ...

    def from_embedded(self, payload: Mapping[str, Any], device: str = "cpu") -> Codec: ...


L = TypeVar("L")


def register_codec(name: str) -> Callable[[type[L]], type[L]]:
    """Class decorator: register a loader class under ``name`` (an instance is stored)."""

    def deco(cls: type[L]) -> type[L]:
        if name in _LOADERS and type(_LOADERS[name]) is not cls:
            raise ValueError(f"codec {name!r} is already registered by {type(_LOADERS[name])}")
        loader: Any = cls()
        loader.name = name
        _LOADERS[name] = loader
        return cls

    return deco


def _ensure_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def registered_codecs() -> tuple[str, ...]:
    """Names of the registered codecs, sorted."""
    _ensure_builtins()
    return tuple(sorted(_LOADERS))


def get_codec_loader(name: str) -> CodecLoader:
    """The loader registered as ``name``; :class:`UnknownCodecError` lists the known names."""
    _ensure_builtins()
    try:
        return _LOADERS[name]
    except KeyError:
        raise UnknownCodecError(
            f"unknown codec {name!r}; choose one of {list(registered_codecs())}"
        ) from None


def load_codec(name: str, path: str | Path, device: str = "cpu", **options: Any) -> Codec:
    """Build the codec ``name`` from ``path`` (a local directory or a hub id) with ``options``
    (e.g. ``bandwidth`` in kbps for EnCodec)."""
    return get_codec_loader(name).load(str(path), device=device, **options)


def read_codec_choice(path: str | Path) -> tuple[str, dict[str, Any]]:
    """A recipe's codec choice file: YAML ``{name: <registered codec>, options: {...}}``.

    ``options`` are the loader's (``bandwidth`` for EnCodec, ``merge_rates`` for the merged
    codecs); the codec's files come from elsewhere (``--codec-path``). Returns ``(name,
    options)``; an unknown name or key is an error that says what is allowed.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codec choice file {path} not found")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(
            f"{path}: expected a mapping with 'name' (one of {list(registered_codecs())}) and "
            "optional 'options' (the codec's load options)"
        )
    unknown = sorted(set(data) - {"name", "options"})
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; allowed: name, options")
    name = str(data["name"])
    get_codec_loader(name)  # an unknown name lists the registered ones
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{path}: 'options' must be a mapping, got {options!r}")
    return name, dict(options)


def recognize_codec_dir(directory: str | Path) -> tuple[str, dict[str, Any]] | None:
    """``(name, options)`` of the registered codec whose files ``directory`` holds, or None."""
    directory = Path(directory)
    for name in registered_codecs():
        options = _LOADERS[name].recognize(directory)
        if options is not None:
            return name, options
    return None


def is_embeddable(name: str) -> bool:
    """Whether checkpoints carry the codec ``name`` itself (not only its path)."""
    return bool(getattr(get_codec_loader(name), "embeddable", False))


def embed_codec(name: str, codec: Codec) -> dict[str, Any] | None:
    """``{"name", "payload"}`` to store in a checkpoint, or None when the codec is too large."""
    payload = get_codec_loader(name).embed(codec)
    return None if payload is None else {"name": name, "payload": payload}


def codec_from_embedded(entry: Mapping[str, Any], device: str = "cpu") -> Codec:
    """The codec stored by :func:`embed_codec`."""
    if not isinstance(entry, Mapping) or "name" not in entry or "payload" not in entry:
        raise ValueError("an embedded codec entry must be {'name': ..., 'payload': {...}}")
    return get_codec_loader(str(entry["name"])).from_embedded(entry["payload"], device=device)
