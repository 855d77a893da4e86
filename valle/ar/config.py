"""The AR decoder's config section: a backbone size and one settings section per component.

Each component section picks its kind and holds only that kind's options; the settings
classes live beside their components (layouts, heads, masks, stops, samplers)::

    ar:
      layout: {kind: grouped, group: 2}
      head: {kind: categorical, tie_embedding: true}
      mask: {kind: prefix}
      stop: {kind: eos}
      sampler: {kind: repetition_aware, top_p: 0.8, window: 10, threshold: 0.1}

Configs saved before this layout (flat strings ``layout: first_codebook``, ``group_size``,
``head: categorical``, ``mask: prefix`` and a flat sampler with every number) keep loading:
:meth:`ARConfig.__migrate__` rewrites them, and their head stays untied, as it was trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from valle.ar.alignment_prior import AlignmentPriorConfig
from valle.ar.heads import CategoricalHeadConfig, HeadConfig
from valle.ar.layouts import FirstCodebookLayoutConfig, LayoutConfig
from valle.ar.masks import MaskConfig, PrefixMaskConfig
from valle.ar.stops import EosStopConfig, StopConfig
from valle.config import ConfigError, TransformerConfig, opt
from valle.sampling.factory import SampleConfig, SamplerConfig

__all__ = ["ARConfig", "migrate_ar_section"]


def migrate_ar_section(d: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ar`` section of an older config in the current shape (a no-op on new ones).

    Old shape: ``layout``, ``head`` and ``mask`` as kind strings, ``group_size`` beside them
    and a sampler holding every kind's numbers. Every saved old config has ``group_size`` (a
    saved config holds every field), which is how the old shape is recognised: a bare kind
    string alone (``head: categorical``) is the new shape's shorthand for that kind's
    defaults. The head of an old checkpoint is untied (it was the only choice), so its
    ``head`` becomes ``tie_embedding: false``.
    """
    d = dict(d)
    if "group_size" not in d:
        return d
    group = d.pop("group_size", None)
    layout = d.get("layout", "first_codebook")
    if isinstance(layout, str):
        layout = {"kind": layout}
        if layout["kind"] == "grouped" and group is not None:
            layout["group"] = group
        d["layout"] = layout
    if isinstance(d.get("head", "categorical"), str):
        d["head"] = {"kind": d.get("head", "categorical"), "tie_embedding": False}
    sampler = d.get("sampler")
    if isinstance(sampler, Mapping) and "kind" in sampler:
        # the flat sampler carried numbers its kind never read
        cls = SamplerConfig.kind_class(sampler["kind"], "ar.sampler.kind")
        names = {f.name for f in fields(cls)}
        d["sampler"] = {k: v for k, v in sampler.items() if k in names}
    return d


@dataclass(frozen=True)
class ARConfig:
    """Autoregressive decoder over the first codebook (VALL-E Sec 4.2.1)."""

    backbone: TransformerConfig = opt(help="transformer size", factory=TransformerConfig)
    layout: LayoutConfig = opt(
        help="acoustic layout: what one AR step predicts", factory=FirstCodebookLayoutConfig
    )
    head: HeadConfig = opt(help="output head: loss and sampling", factory=CategoricalHeadConfig)
    mask: MaskConfig = opt(
        help="attention-mask policy over [text ; audio]", factory=PrefixMaskConfig
    )
    stop: StopConfig = opt(help="when generation stops", factory=EosStopConfig)
    max_len_ratio: float = opt(
        20.0, "generation bound: at most ceil(ratio * text tokens) new frames (frames per token)"
    )
    sampler: SamplerConfig = opt(help="default sampler for generation", factory=SampleConfig)
    alignment_prior: AlignmentPriorConfig | None = opt(
        None, "training aid: diagonal prior on the audio-to-text attention (null: off)"
    )
    step_dropout: float = opt(
        0.0,
        "training aid: share of fed-back steps whose code embedding is zeroed in training, so "
        "the model must read the text there (valle.ar.step_dropout; 0: off; in [0, 1))",
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.step_dropout < 1.0:
            raise ConfigError(f"ar.step_dropout must be in [0, 1), got {self.step_dropout}")

    @staticmethod
    def __migrate__(d: Mapping[str, Any]) -> dict[str, Any]:
        return migrate_ar_section(d)
