"""Word and character error rates with per-utterance rows and a corpus-level figure.

The corpus error rate is ``sum(S + D + I) / sum(reference tokens)`` over all utterances, as
the VALL-E papers report WER on LibriSpeech test-clean (VALL-E §5.1, VALL-E 2 §4), never the
mean of per-utterance rates (which over-weights short utterances). Tokens are words, or
characters for Mandarin and Japanese (CER; :func:`valle.eval.normalize.is_character_language`).
jiwer computes the Levenshtein alignment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import jiwer

from valle.eval.files import write_csv
from valle.eval.normalize import TextNormalizer, is_character_language, normalizer_for

logger = logging.getLogger(__name__)

Unit = Literal["word", "char"]

ROW_FIELDS = (
    "id",
    "reference",
    "hypothesis",
    "substitutions",
    "deletions",
    "insertions",
    "hits",
    "errors",
    "ref_len",
    "error_rate",
)


@dataclass(frozen=True)
class UtteranceErrors:
    """Edit counts of one utterance; ``reference``/``hypothesis`` are the normalised texts."""

    id: str
    reference: str
    hypothesis: str
    substitutions: int
    deletions: int
    insertions: int
    hits: int

    @property
    def ref_len(self) -> int:
        """Number of reference tokens (``S + D + H``)."""
        return self.substitutions + self.deletions + self.hits

    @property
    def errors(self) -> int:
        """``S + D + I``."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def error_rate(self) -> float:
        """Per-utterance rate; ``inf`` for insertions against an empty reference."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.ref_len

    def as_row(self) -> dict[str, object]:
        row: dict[str, object] = asdict(self)
        row.update(errors=self.errors, ref_len=self.ref_len, error_rate=round(self.error_rate, 6))
        return row


@dataclass(frozen=True)
class CorpusErrors:
    """Per-utterance rows and the corpus-level error rate (``unit`` word -> WER, char -> CER)."""

    rows: list[UtteranceErrors] = field(default_factory=list)
    unit: Unit = "word"

    @property
    def substitutions(self) -> int:
        return sum(r.substitutions for r in self.rows)

    @property
    def deletions(self) -> int:
        return sum(r.deletions for r in self.rows)

    @property
    def insertions(self) -> int:
        return sum(r.insertions for r in self.rows)

    @property
    def hits(self) -> int:
        return sum(r.hits for r in self.rows)

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def ref_len(self) -> int:
        return self.substitutions + self.deletions + self.hits

    @property
    def error_rate(self) -> float:
        """``sum(errors) / sum(reference tokens)`` (a fraction, not a percentage)."""
        if self.ref_len == 0:
            raise ValueError("all references are empty after normalisation: nothing to score")
        return self.errors / self.ref_len

    @property
    def metric(self) -> str:
        return "WER" if self.unit == "word" else "CER"

    def summary(self) -> dict[str, object]:
        """Counts and the corpus rate, for JSON summaries and report inputs."""
        return {
            "metric": self.metric,
            "error_rate": self.error_rate,
            "utterances": len(self.rows),
            "ref_len": self.ref_len,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "hits": self.hits,
        }

    def write_csv(self, path: str | Path) -> Path:
        """Per-utterance rows as CSV (atomic)."""
        return write_csv(path, ROW_FIELDS, (r.as_row() for r in self.rows))


def _tokens(text: str, unit: Unit) -> str:
    # jiwer splits on whitespace; for characters we put a space between every character.
    return " ".join(text.replace(" ", "")) if unit == "char" else text


def score_utterance(
    utt_id: str,
    reference: str,
    hypothesis: str,
    normalizer: TextNormalizer,
    unit: Unit = "word",
) -> UtteranceErrors:
    """Normalise both texts and count substitutions, deletions, insertions and hits."""
    ref = normalizer(reference)
    hyp = normalizer(hypothesis)
    out = jiwer.process_words(_tokens(ref, unit), _tokens(hyp, unit))
    return UtteranceErrors(
        id=utt_id,
        reference=ref,
        hypothesis=hyp,
        substitutions=out.substitutions,
        deletions=out.deletions,
        insertions=out.insertions,
        hits=out.hits,
    )


def score_corpus(
    ids: Sequence[str],
    references: Sequence[str],
    hypotheses: Sequence[str],
    language: str | None = "en",
    normalizer: TextNormalizer | None = None,
    unit: Unit | None = None,
) -> CorpusErrors:
    """Score a corpus. ``language`` picks the normaliser and the unit (CER for zh/ja) unless
    ``normalizer``/``unit`` are given."""
    if not (len(ids) == len(references) == len(hypotheses)):
        raise ValueError(
            f"ids ({len(ids)}), references ({len(references)}) and hypotheses "
            f"({len(hypotheses)}) must have the same length"
        )
    if len(set(ids)) != len(ids):
        raise ValueError("utterance ids must be unique")
    norm = normalizer if normalizer is not None else normalizer_for(language)
    u: Unit = unit if unit is not None else ("char" if is_character_language(language) else "word")
    rows = [
        score_utterance(i, r, h, norm, u)
        for i, r, h in zip(ids, references, hypotheses, strict=True)
    ]
    result = CorpusErrors(rows=rows, unit=u)
    logger.info("%s %.4f over %d utterances", result.metric, result.error_rate, len(rows))
    return result
