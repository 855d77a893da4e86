"""Token samplers for the AR generate loops: ``(logits (B, V), history (B, t), generator) -> (B,)``.

>>> from valle.sampling import FilteredSampler, Temperature, TopK, TopP, RepetitionAwareSampler
>>> sampler = FilteredSampler([Temperature(0.8), TopK(50), TopP(0.9)])
>>> ras = RepetitionAwareSampler(top_p=0.8, window=10, threshold=0.1)   # VALL-E 2
"""

from valle.sampling.base import LogitFilter, TokenSampler
from valle.sampling.factory import SAMPLER_KINDS, SamplerConfig, build_sampler
from valle.sampling.filters import Temperature, TopK, TopP
from valle.sampling.latent import GaussianSampler
from valle.sampling.repetition_aware import RepetitionAwareSampler, repetition_ratio
from valle.sampling.samplers import FilteredSampler, Greedy, draw

__all__ = [
    "SAMPLER_KINDS",
    "SamplerConfig",
    "build_sampler",
    "FilteredSampler",
    "GaussianSampler",
    "Greedy",
    "LogitFilter",
    "RepetitionAwareSampler",
    "Temperature",
    "TokenSampler",
    "TopK",
    "TopP",
    "draw",
    "repetition_ratio",
]
