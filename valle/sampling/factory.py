"""Build a token sampler from its config section (the YAML -> object boundary).

Generate loops take sampler objects; configs and CLIs hold names and numbers. Each sampler
kind has its own settings dataclass here (a :class:`~valle.config.ComponentConfig` family,
DESIGN.md section 2b), holding only the numbers that kind reads:

========================  ===================================================================
kind                      sampler
========================  ===================================================================
``greedy``                :class:`Greedy` (no settings)
``sample``                :class:`FilteredSampler` over Temperature -> TopK -> TopP, each
                          only when its value is given
``repetition_aware``      :class:`RepetitionAwareSampler` (VALL-E 2, Sec. 3.2): nucleus
                          ``top_p`` (after the optional temperature / top-k; 0: greedy),
                          window K, threshold t_r; fallback = random sampling from the
                          tempered full distribution
========================  ===================================================================

>>> build_sampler(SamplerConfig.kind_class("repetition_aware")(top_p=0.8))  # from a config
>>> build_sampler("sample", temperature=0.8)                               # CLI keywords
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from valle.config import ComponentConfig, ConfigError, from_dict, opt, register_kind
from valle.sampling.base import LogitFilter, TokenSampler
from valle.sampling.filters import Temperature, TopK, TopP
from valle.sampling.repetition_aware import RepetitionAwareSampler
from valle.sampling.samplers import FilteredSampler, Greedy

__all__ = [
    "SAMPLER_KINDS",
    "GreedyConfig",
    "RepetitionAwareConfig",
    "SampleConfig",
    "SamplerConfig",
    "build_sampler",
]


@dataclass(frozen=True)
class SamplerConfig(ComponentConfig):
    """A token sampler's settings, chosen by ``kind`` (greedy | sample | repetition_aware)."""

    __kinds__: ClassVar[dict[str, type]] = {}

    def __post_init__(self) -> None:
        try:  # bad numbers are errors at load time, not at the first decode
            self.build()
        except ValueError as e:
            raise ConfigError(f"sampler {self.kind}: {e}") from e

    def build(self) -> TokenSampler:
        raise NotImplementedError


def _filters(temperature: float | None, top_k: int | None) -> list[LogitFilter]:
    base: list[LogitFilter] = []
    if temperature is not None:
        base.append(Temperature(temperature))
    if top_k is not None:
        base.append(TopK(top_k))
    return base


@register_kind("greedy")
@dataclass(frozen=True)
class GreedyConfig(SamplerConfig):
    """Arg-max decoding."""

    kind: str = opt("greedy", "token sampler: greedy | sample | repetition_aware")

    def build(self) -> TokenSampler:
        return Greedy()


@register_kind("sample")
@dataclass(frozen=True)
class SampleConfig(SamplerConfig):
    """Random sampling after optional temperature, top-k and top-p filters (VALL-E Sec 4.3)."""

    kind: str = opt("sample", "token sampler: greedy | sample | repetition_aware")
    temperature: float | None = opt(None, "softmax temperature, > 0 (null: 1)")
    top_k: int | None = opt(None, "keep the k most likely tokens (count; null: all)")
    top_p: float | None = opt(
        None, "nucleus probability mass in [0, 1] (0: the most likely token; null: no nucleus)"
    )

    def build(self) -> TokenSampler:
        nucleus: list[LogitFilter] = [TopP(self.top_p)] if self.top_p is not None else []
        return FilteredSampler(_filters(self.temperature, self.top_k) + nucleus)


@register_kind("repetition_aware")
@dataclass(frozen=True)
class RepetitionAwareConfig(SamplerConfig):
    """VALL-E 2's repetition-aware sampling (Sec 3.2, Algorithm 1).

    The paper sets K = 10 and t_r = 0.1 and "select[s] the top-p value v from 0.0 to 0.8 with
    the intervals of 0.1" (Sec 4); 0.8 (the top of that range) is the default here. ``top_p:
    0`` makes the nucleus branch greedy (arg-max, no random draw): greedy decoding that falls
    back to random sampling when the chosen code repeats, so it cannot loop forever.
    """

    kind: str = opt("repetition_aware", "token sampler: greedy | sample | repetition_aware")
    temperature: float | None = opt(None, "softmax temperature, > 0 (null: 1)")
    top_k: int | None = opt(None, "keep the k most likely tokens before the nucleus (null: all)")
    top_p: float = opt(
        0.8, "nucleus probability mass in [0, 1] (0: greedy nucleus; paper: 0.0 to 0.8)"
    )
    window: int = opt(10, "history window K (codes)")
    threshold: float = opt(0.1, "fall back to random sampling above this repetition ratio t_r")

    def build(self) -> TokenSampler:
        base = _filters(self.temperature, self.top_k)
        nucleus: TokenSampler = (
            Greedy() if self.top_p == 0 else FilteredSampler(base + [TopP(self.top_p)])
        )
        return RepetitionAwareSampler(
            nucleus=nucleus,
            fallback=FilteredSampler([f for f in base if isinstance(f, Temperature)]),
            window=self.window,
            threshold=self.threshold,
        )


SAMPLER_KINDS: tuple[str, ...] = tuple(SamplerConfig.__kinds__)


def build_sampler(config: SamplerConfig | str, **numbers: Any) -> TokenSampler:
    """Make a sampler from its config section, or from a kind name and keyword numbers.

    With a name (the CLI path, e.g. ``build_sampler("sample", temperature=0.8)``) ``None``
    values are left out and numbers the kind does not read are ignored (greedy ignores
    every number); a number the kind reads is validated.

    Raises:
        ValueError: unknown kind (the message lists the known ones) or a bad number.
    """
    if isinstance(config, str):
        if config not in SamplerConfig.__kinds__:
            raise ValueError(
                f"unknown sampler kind {config!r}; choose one of: {', '.join(SAMPLER_KINDS)}"
            )
        cls = SamplerConfig.__kinds__[config]
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in numbers.items() if v is not None and k in names}
        try:
            config = from_dict(cls, {**given, "kind": config})
        except ConfigError as e:
            raise ValueError(str(e)) from e
    elif numbers:
        raise TypeError("pass either a sampler config or a kind name with numbers, not both")
    return config.build()
