"""Build a token sampler from a config's plain values (the YAML -> object boundary).

Generate loops take sampler objects; configs and CLIs hold names and numbers. This is the
one place that turns ``kind`` + numbers into an object:

========================  ===================================================================
kind                      sampler
========================  ===================================================================
``greedy``                :class:`Greedy` (ignores every number)
``sample``                :class:`FilteredSampler` over Temperature -> TopK -> TopP, each
                          only when its value is given
``repetition_aware``      :class:`RepetitionAwareSampler` (VALL-E 2, Sec. 3.2): nucleus
                          ``top_p`` (after the optional temperature / top-k), window K,
                          threshold t_r; fallback = random sampling from the tempered
                          full distribution
========================  ===================================================================
"""

from __future__ import annotations

from valle.sampling.base import LogitFilter, TokenSampler
from valle.sampling.filters import Temperature, TopK, TopP
from valle.sampling.repetition_aware import RepetitionAwareSampler
from valle.sampling.samplers import FilteredSampler, Greedy

SAMPLER_KINDS: tuple[str, ...] = ("greedy", "sample", "repetition_aware")


def build_sampler(
    kind: str,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    window: int = 10,
    threshold: float = 0.1,
) -> TokenSampler:
    """Make the sampler named ``kind`` (see the table above); ``None`` leaves a filter out.

    Raises:
        ValueError: unknown ``kind`` (the message lists the known ones) or a bad number.
    """
    if kind == "greedy":
        return Greedy()
    base: list[LogitFilter] = []
    if temperature is not None:
        base.append(Temperature(temperature))
    if top_k is not None:
        base.append(TopK(top_k))
    if kind == "sample":
        return FilteredSampler(base + ([TopP(top_p)] if top_p is not None else []))
    if kind == "repetition_aware":
        nucleus = FilteredSampler(base + [TopP(0.8 if top_p is None else top_p)])
        fallback = FilteredSampler([f for f in base if isinstance(f, Temperature)])
        return RepetitionAwareSampler(
            nucleus=nucleus, fallback=fallback, window=window, threshold=threshold
        )
    raise ValueError(f"unknown sampler kind {kind!r}; choose one of: {', '.join(SAMPLER_KINDS)}")
