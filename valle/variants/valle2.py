"""VALL-E 2 (Chen et al. 2024, arXiv 2406.05370): VALL-E with grouped codes, a code-ID NAR
and repetition-aware sampling.

Shape legend: B batch, S text tokens, P prompt frames, T frames, Q codebooks, G group.

The wiring only; every part is VALL-E's (:mod:`valle.variants.valle`) or a shared component:

- AR: grouped code modeling (Sec 3.1): ``ar.layout: {kind: grouped, group: G}``, G frames per
  step, the sequence trimmed at the start to a multiple of G (:class:`~valle.ar.layouts.
  GroupedCodeLayout`); group embedding ``W^g`` in, group prediction layer out, the code
  prediction layer tied to the code embedding (:class:`~valle.ar.heads.CategoricalHead`).
- AR sampler: repetition-aware sampling (Sec 3.2, Algorithm 1; :class:`~valle.sampling.
  RepetitionAwareSampler`), K = 10, t_r = 0.1.
- NAR: a code-ID token instead of AdaLN (Sec 3.2; :class:`~valle.nar.stage.CodeIdTokenStage`),
  trained with the acoustic-condition split (Sec 3.3; :mod:`valle.nar.condition`), which
  reads each item's codec frame rate (:class:`~valle.data.featurizers.FrameRate`).

Training and synthesis are VALL-E's (:class:`~valle.variants.valle.Valle`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from valle.ar.builders import build_ar_decoder
from valle.ar.config import ARConfig
from valle.ar.layouts import GroupedLayoutConfig
from valle.config import VocabConfig, opt
from valle.data.featurizers import DataRequest, FrameRate
from valle.nar.condition import ConditionNARConfig
from valle.registry import register_variant
from valle.sampling.factory import RepetitionAwareConfig
from valle.variants.tiny import TinySize, tiny_config
from valle.variants.valle import STAGES, Valle, build_nar

__all__ = ["Valle2Config"]


def _grouped_ar() -> ARConfig:
    return ARConfig(layout=GroupedLayoutConfig(group=2), sampler=RepetitionAwareConfig())


@register_variant("valle2")
@dataclass(frozen=True)
class Valle2Config:
    """VALL-E 2: which parts, how big; vocabulary facts come from the data."""

    vocab: VocabConfig = opt(help="vocabulary facts read from tokens.txt and the codec")
    ar: ARConfig | None = opt(
        help="AR decoder over codebook 1, G frames per step (null: none)", factory=_grouped_ar
    )
    nar: ConditionNARConfig | None = opt(
        help="NAR decoder over codebooks 2..Q (null: none)", factory=ConditionNARConfig
    )

    stages: ClassVar[tuple[str, ...]] = STAGES

    def build(self) -> Valle:
        ar = build_ar_decoder(self.ar, self.vocab) if self.ar is not None else None
        return Valle(ar, build_nar(self.nar, self.vocab), config=self)

    def data_request(self, stages: tuple[str, ...] | None = None) -> DataRequest:
        """Each item's codec frame rate for a trained NAR (the split is in seconds)."""
        if self.nar is None or (stages is not None and "nar" not in stages):
            return DataRequest()
        return DataRequest(featurizers=(FrameRate(),))

    @classmethod
    def tiny(
        cls,
        *,
        group: int = 2,
        overrides: Iterable[str] = (),
        **size: Any,
    ) -> Valle2Config:
        """A config small enough to train in seconds on a CPU (greedy AR by default, so the
        contract tests can compare outputs exactly; the preset's sampler is RAS). The
        condition split is scaled to the dummy batches' few frames (0.02-0.12 s at the
        dummy 75 frames/s). ``size``: :class:`~valle.variants.tiny.TinySize` keywords."""
        s = TinySize(**size)
        ar = s.ar(layout={"kind": "grouped", "group": group})
        return tiny_config(cls, s, overrides, ar=ar,
                           nar=s.nar(min_seconds=0.02, max_seconds=0.12))  # fmt: skip
