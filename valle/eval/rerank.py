"""Choosing one of several samples per item (VALL-E 2 §4, "multiple sampling").

With ``n_samples > 1`` a system synthesizes each test item several times and the evaluation keeps
the best sample by an automatic score, the way VALL-E 2 reports a best-of-N figure beside the
single-sample one. What "best" means is a criterion object:

- :class:`LowestWER`: fewest ASR errors (intelligibility), ties broken by higher similarity;
- :class:`HighestSimilarity`: highest speaker similarity, ties broken by fewer errors;
- :class:`CappedSimilarityThenWER`: VALL-E 2's selection of one of 5 samples, the highest
  ``[min(SIM, 0.3), 1 - WER]`` in lexicographic order: any sample similar enough (SIM >= 0.3)
  competes on WER alone, a less similar one loses to a more similar one whatever its WER.

A criterion that needs both scores reads them from two runs: ``valle-bench sim`` and ``wer``
write each sample's score (:func:`write_sample_scores`), and the other subcommand's
``--rerank-scores`` reads them (:func:`read_sample_scores`).

Best-of-N numbers are optimistic by construction (the ASR/encoder that scores also chooses):
report them next to, never instead of, single-sample numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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
    """Sort key: the sample with the smallest key is kept; ``needs``: the scores it reads
    (``errors`` from ASR, ``similarity`` from a speaker encoder)."""

    name: str
    needs: frozenset[str]

    def key(self, s: SampleScore) -> tuple[float, ...]: ...


def _require(value: object, what: str) -> None:
    if value is None:
        raise ValueError(f"reranking needs {what} for every sample")


class LowestWER:
    name = "wer"
    needs = frozenset({"errors"})

    def key(self, s: SampleScore) -> tuple[float, ...]:
        _require(s.errors, "ASR errors")
        sim = s.similarity if s.similarity is not None else 0.0
        return (float(s.errors), -sim, float(s.sample))  # type: ignore[arg-type]


class HighestSimilarity:
    name = "sim"
    needs = frozenset({"similarity"})

    def key(self, s: SampleScore) -> tuple[float, ...]:
        _require(s.similarity, "a similarity")
        err = s.errors if s.errors is not None else 0
        return (-float(s.similarity), float(err), float(s.sample))  # type: ignore[arg-type]


class CappedSimilarityThenWER:
    """VALL-E 2's key: the highest ``[min(SIM, cap), 1 - WER]`` (lexicographic), cap 0.3.

    The similarity counts only up to ``cap``, so among samples at or above it the lowest WER
    (errors / reference tokens) wins; below it, a higher similarity wins first. Full ties go
    to the lowest sample index. Needs both scores of every sample.
    """

    name = "sim_cap_wer"
    needs = frozenset({"errors", "similarity"})

    def __init__(self, cap: float = 0.3) -> None:
        if not math.isfinite(cap):
            raise ValueError(f"the similarity cap must be finite, got {cap}")
        self.cap = float(cap)

    def key(self, s: SampleScore) -> tuple[float, ...]:
        _require(s.similarity, "a similarity")
        _require(s.errors, "ASR errors")
        wer = float(s.errors) / max(1, s.ref_len or 0)  # type: ignore[arg-type]
        return (-min(float(s.similarity), self.cap), wer, float(s.sample))  # type: ignore[arg-type]


RERANK_CRITERIA: dict[str, RerankCriterion] = {
    "wer": LowestWER(),
    "sim": HighestSimilarity(),
    "sim_cap_wer": CappedSimilarityThenWER(),
}
SAMPLE_SCORE_FIELDS = ("id", "sample", "errors", "ref_len", "similarity")


def write_sample_scores(path: str | Path, scores: Iterable[tuple[str, SampleScore]]) -> Path:
    """Every sample's scores as CSV rows ``id, sample, errors, ref_len, similarity``."""
    from valle.eval.files import write_csv

    rows = [
        {"id": i, "sample": s.sample, "errors": s.errors, "ref_len": s.ref_len,
         "similarity": s.similarity}
        for i, s in scores
    ]  # fmt: skip
    return write_csv(path, SAMPLE_SCORE_FIELDS, rows)


def read_sample_scores(path: str | Path) -> dict[tuple[str, int], SampleScore]:
    """The rows of :func:`write_sample_scores`, by ``(id, sample)``."""
    from valle.eval.files import read_csv

    if not Path(path).is_file():
        raise FileNotFoundError(f"sample scores not found: {path}")

    def num(text: str | None, kind: type) -> object:
        return None if text in (None, "") else kind(text)

    out: dict[tuple[str, int], SampleScore] = {}
    for row in read_csv(path):
        k = int(row["sample"])
        out[(row["id"], k)] = SampleScore(
            k, num(row.get("errors"), int), num(row.get("ref_len"), int),  # type: ignore[arg-type]
            num(row.get("similarity"), float),  # type: ignore[arg-type]
        )  # fmt: skip
    return out


def merge_scores(a: SampleScore, b: SampleScore | None) -> SampleScore:
    """``a`` with the scores it lacks taken from ``b`` (the same sample scored elsewhere)."""
    if b is None:
        return a
    return SampleScore(
        a.sample,
        a.errors if a.errors is not None else b.errors,
        a.ref_len if a.ref_len is not None else b.ref_len,
        a.similarity if a.similarity is not None else b.similarity,
    )


def rerank_criterion(name: str) -> RerankCriterion:
    """The criterion named ``name`` (see :data:`RERANK_CRITERIA`)."""
    if name not in RERANK_CRITERIA:
        raise ValueError(
            f"unknown rerank criterion {name!r}; choose one of {sorted(RERANK_CRITERIA)}"
        )
    return RERANK_CRITERIA[name]


def best_samples(
    ids: Sequence[str],
    own: Sequence[Sequence[SampleScore]],
    criterion: RerankCriterion,
    other: Mapping[tuple[str, int], SampleScore] | None = None,
) -> list[int]:
    """For each item, the sample ``criterion`` keeps: ``own[n]`` holds item n's samples as
    one subcommand scored them, ``other`` the other scores by ``(id, sample)``."""
    out = []
    for i, samples in zip(ids, own, strict=True):
        merged = [merge_scores(s, (other or {}).get((i, s.sample))) for s in samples]
        try:
            out.append(select_best(merged, criterion).sample)
        except ValueError as e:
            raise ValueError(f"item {i}: {e} (criterion {criterion.name})") from e
    return out


def select_best(samples: Sequence[SampleScore], criterion: RerankCriterion) -> SampleScore:
    """The sample with the best score under ``criterion`` (lowest sample index on full ties)."""
    if not samples:
        raise ValueError("no samples to choose from")
    return min(samples, key=criterion.key)


def rerank_samples(
    out_dir: str | Path,
    ids: Sequence[str],
    own: Sequence[Sequence[SampleScore]],
    kind: str,
    criterion_name: str,
    other_scores: str | Path | None = None,
) -> tuple[list[int], str]:
    """Best of N for one subcommand's scores: write every sample's ``kind`` (``wer`` or
    ``sim``) scores to ``<out_dir>/<kind>_samples.csv`` and choose each item's best sample with
    the criterion ``criterion_name``, reading the other metric from ``other_scores`` (that
    subcommand's ``<kind>_samples.csv``) when the criterion needs it. Returns the chosen sample
    indices and the criterion's name."""
    write_sample_scores(
        Path(out_dir) / f"{kind}_samples.csv",
        [(i, s) for i, row in zip(ids, own, strict=True) for s in row],
    )
    criterion = rerank_criterion(criterion_name)
    other = read_sample_scores(other_scores) if other_scores else None
    have = {"errors"} if kind == "wer" else {"similarity"}
    missing = set(criterion.needs) - have
    if missing and other is None:
        raise ValueError(
            f"--rerank {criterion.name} reads {' and '.join(sorted(missing))} too: pass "
            "--rerank-scores with the per-sample scores of the other subcommand"
        )
    return best_samples(ids, own, criterion, other), criterion.name
