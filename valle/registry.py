"""Model variant registry: a name -> config class whose ``build()`` makes the model.

    @register_variant("valle")
    @dataclass(frozen=True)
    class ValleConfig:
        ...
        def build(self) -> nn.Module: ...

Variants live in ``valle/variants/`` (one file per paper); importing that package
registers all of them, which :func:`get_variant` does on first use.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "UnknownVariantError",
    "choose_component",
    "register_variant",
    "get_variant",
    "registered_variants",
    "build_model",
    "data_request",
    "variant_stages",
]

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=type)

_VARIANTS: dict[str, type] = {}


class UnknownVariantError(LookupError):
    """No variant is registered under the requested name."""


def register_variant(name: str) -> Callable[[C], C]:
    """Class decorator registering a frozen config dataclass with a ``build()`` method."""

    def decorate(cls: C) -> C:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"@register_variant({name!r}) needs a dataclass, got {cls!r}")
        if not callable(getattr(cls, "build", None)):
            raise TypeError(f"@register_variant({name!r}): {cls.__name__} has no build() method")
        old = _VARIANTS.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"variant {name!r} is already registered by {old.__qualname__}")
        cls.variant_name = name  # type: ignore[attr-defined]
        _VARIANTS[name] = cls
        return cls

    return decorate


def _load_builtin() -> None:
    import valle.variants  # noqa: F401  (registers the shipped variants)


def registered_variants() -> list[str]:
    """Names of all registered variants, sorted."""
    _load_builtin()
    return sorted(_VARIANTS)


def get_variant(name: str) -> type:
    """The config class registered as ``name``; unknown names list the registered ones."""
    _load_builtin()
    if name not in _VARIANTS:
        near = difflib.get_close_matches(name, list(_VARIANTS), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, near))}?" if near else ""
        raise UnknownVariantError(
            f"unknown model variant {name!r}.{hint} Registered variants: "
            f"{', '.join(sorted(_VARIANTS)) or '(none)'}"
        )
    return _VARIANTS[name]


def build_model(cfg: Any) -> nn.Module:
    """Build the model a (registered) variant config describes."""
    if _variant_name_of(cfg) is None:
        raise TypeError(
            f"{type(cfg).__name__} is not a registered variant config; "
            f"use one of {registered_variants()} (valle.config.compose_config makes them)"
        )
    model = cfg.build()
    n = sum(p.numel() for p in model.parameters())
    logger.info("built %s model with %.2fM parameters", cfg.variant_name, n / 1e6)
    return model


def variant_stages(variant: Any) -> tuple[str, ...]:
    """The stages of a variant: the parts of its model that train apart (``train.stages``).

    ``variant`` is a config, a config class or a registered name (for a variant preset such as
    ``melle_hifigan``, pass :func:`valle.config.preset_variant` of it). Each variant declares
    them once, as ``stages`` on its config class; the model's ``loss(batch, stages)``, the
    trainer and the ``--stages`` option all read that one list.
    """
    cls = get_variant(variant) if isinstance(variant, str) else variant
    cls = cls if isinstance(cls, type) else type(cls)
    stages = getattr(cls, "stages", None)
    if not stages:
        raise TypeError(f"{cls.__name__} declares no stages (a class attribute: stages = (...))")
    return tuple(stages)


def data_request(cfg: Any, stages: Iterable[str] | None = None) -> Any:
    """What the model of ``cfg`` reads from the data beyond the core batch, when training
    ``stages`` (None: all of them): a :class:`valle.data.featurizers.DataRequest`.

    A variant declares it with a ``data_request(stages)`` method on its config; a variant
    without one reads the core batch only.
    """
    from valle.data.featurizers import DataRequest

    method = getattr(cfg, "data_request", None)
    if method is None:
        return DataRequest()
    request = method(tuple(stages) if stages is not None else None)
    if not isinstance(request, DataRequest):
        raise TypeError(f"{type(cfg).__name__}.data_request() must return a DataRequest")
    return request


def _variant_name_of(cfg: Any) -> str | None:
    return getattr(type(cfg), "variant_name", None)


def choose_component(table: dict[str, Any], name: str, what: str) -> Any:
    """``table[name]`` for a component chosen by name in a config; unknown names list options."""
    if name not in table:
        near = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, near))}?" if near else ""
        raise ValueError(
            f"unknown {what} {name!r}.{hint} Choose one of: {', '.join(sorted(table))}"
        )
    return table[name]
