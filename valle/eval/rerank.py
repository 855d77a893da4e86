"""Choosing one of several samples per item (VALL-E 2 §4, "multiple sampling").

With ``n_samples > 1`` a system synthesizes each test item several times and the evaluation keeps
the best sample by an automatic score, the way VALL-E 2 reports a best-of-N figure beside the
single-sample one. What "best" means is a criterion object:

- :class:`LowestWER`: fewest ASR errors (intelligibility), ties broken by higher similarity;
- :class:`HighestSimilarity`: highest speaker similarity, ties broken by fewer errors.

Best-of-N numbers are optimistic by construction (the ASR/encoder that scores also chooses):
report them next to, never instead of, single-sample numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SampleScore:
    """Scores of one sample of one item; ``errors``/``ref_len`` from ASR, ``similarity`` from a
    speaker encoder (either may be missing)."""

    sample: int
    errors: int | None = None
    ref_len: int | None = None
    similarity: float | None = None


class RerankCriterion(Protocol):
    """Sort key: the sample with the smallest key is kept."""

    name: str

    def key(self, s: SampleScore) -> tuple[float, ...]: ...


def _require(value: object, what: str) -> None:
    if value is None:
        raise ValueError(f"reranking needs {what} for every sample")


class LowestWER:
    name = "wer"

    def key(self, s: SampleScore) -> tuple[float, ...]:
        _require(s.errors, "ASR errors")
        sim = s.similarity if s.similarity is not None else 0.0
        return (float(s.errors), -sim, float(s.sample))  # type: ignore[arg-type]


class HighestSimilarity:
    name = "sim"

    def key(self, s: SampleScore) -> tuple[float, ...]:
        _require(s.similarity, "a similarity")
        err = s.errors if s.errors is not None else 0
        return (-float(s.similarity), float(err), float(s.sample))  # type: ignore[arg-type]


RERANK_CRITERIA: dict[str, RerankCriterion] = {"wer": LowestWER(), "sim": HighestSimilarity()}


def select_best(samples: Sequence[SampleScore], criterion: RerankCriterion) -> SampleScore:
    """The sample with the best score under ``criterion`` (lowest sample index on full ties)."""
    if not samples:
        raise ValueError("no samples to choose from")
    return min(samples, key=criterion.key)
