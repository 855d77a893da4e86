"""Hard-sentence robustness test (RALL-E, arXiv 2404.03204, Sec 4: WER and bad cases on hard
sentences), for any model that the :class:`~valle.inference.Synthesizer` runs.

The list (``valle/eval/resources/hard_sentences.txt``, written for this toolkit) holds 45
English sentences in five groups: repeated words, tongue twisters, long numbers and dates,
very short and very long sentences (and a few mixed). Each synthesized sentence is
transcribed by an ASR and scored against its text after normalisation
(:func:`valle.eval.normalize.normalizer_for`, numbers spelled out). A sentence is a **bad
case** when any of these holds:

- its WER is above 50%;
- the word alignment (jiwer's Levenshtein alignment) *skips* a reference word (a deletion);
- the alignment shows a *repeated* word: an inserted word equal to the word before or after
  it in the hypothesis ("the cat cat sat");
- generation hit the AR's length cap (the row ended at the bound, not by its stop rule).

The summary reports the corpus WER (errors over reference words), the share of bad cases
and the share of each criterion, overall and per group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jiwer

from valle.eval.normalize import TextNormalizer, normalizer_for

__all__ = [
    "BAD_WER",
    "HardCase",
    "HardSentence",
    "format_hard_table",
    "format_hard_tables",
    "load_hard_sentences",
    "score_hard_case",
    "summarize_hard",
]

logger = logging.getLogger(__name__)

BAD_WER = 0.5  # a sentence with a higher WER is a bad case


@dataclass(frozen=True)
class HardSentence:
    id: str
    category: str
    text: str


def load_hard_sentences(path: str | Path | None = None) -> list[HardSentence]:
    """The hard sentences: lines ``<id>\\t<category>\\t<text>`` (``#`` comments); the shipped
    list when ``path`` is None."""
    if path is None:
        text = resources.files("valle.eval").joinpath("resources/hard_sentences.txt").read_text()
    else:
        text = Path(path).read_text(encoding="utf-8")
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise ValueError(
                f"{path or 'hard_sentences.txt'}:{n}: need '<id>\\t<category>\\t<text>'"
            )
        out.append(HardSentence(*(p.strip() for p in parts)))
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        raise ValueError("hard sentence ids must be unique")
    return out


@dataclass(frozen=True)
class HardCase:
    """One scored sentence."""

    id: str
    category: str
    reference: str  # normalised
    hypothesis: str  # normalised
    errors: int  # S + D + I
    ref_len: int
    skipped: int  # reference words the alignment deletes
    repeated: int  # inserted words equal to a neighbour in the hypothesis
    hit_cap: bool  # generation ended at the length bound

    @property
    def wer(self) -> float:
        return self.errors / max(self.ref_len, 1)

    @property
    def reasons(self) -> list[str]:
        """Why the sentence is a bad case (empty: it is not)."""
        why = []
        if self.wer > BAD_WER:
            why.append("wer")
        if self.skipped:
            why.append("skipped")
        if self.repeated:
            why.append("repeated")
        if self.hit_cap:
            why.append("cap")
        return why

    @property
    def bad(self) -> bool:
        return bool(self.reasons)

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "wer": self.wer, "bad": self.bad, "reasons": self.reasons}


def score_hard_case(
    sentence: HardSentence,
    hypothesis: str,
    hit_cap: bool = False,
    normalizer: TextNormalizer | None = None,
) -> HardCase:
    """Score one transcript against its sentence (see the module docstring for the rules)."""
    norm = normalizer or normalizer_for("en")
    ref, hyp = norm(sentence.text), norm(hypothesis)
    ref_words, hyp_words = ref.split(), hyp.split()
    if not ref_words:
        raise ValueError(f"hard sentence {sentence.id} is empty after normalisation")
    if not hyp_words:  # everything skipped
        return HardCase(sentence.id, sentence.category, ref, hyp, len(ref_words),
                        len(ref_words), len(ref_words), 0, hit_cap)  # fmt: skip
    out = jiwer.process_words(ref, hyp)
    repeated = 0
    for chunk in out.alignments[0]:
        if chunk.type != "insert":
            continue
        for j in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
            w = hyp_words[j]
            before = j > 0 and hyp_words[j - 1] == w
            after = j + 1 < len(hyp_words) and hyp_words[j + 1] == w
            repeated += int(before or after)
    errors = out.substitutions + out.deletions + out.insertions
    return HardCase(sentence.id, sentence.category, ref, hyp, errors, len(ref_words),
                    out.deletions, repeated, hit_cap)  # fmt: skip


def summarize_hard(cases: Sequence[HardCase]) -> dict[str, Any]:
    """Corpus WER, the share of bad cases and of each criterion, overall and per category."""

    def figures(group: Sequence[HardCase]) -> dict[str, Any]:
        n = len(group)
        ref = sum(c.ref_len for c in group)
        return {
            "sentences": n,
            "wer": sum(c.errors for c in group) / max(ref, 1),
            "bad_share": sum(c.bad for c in group) / max(n, 1),
            "wer_over_50_share": sum(c.wer > BAD_WER for c in group) / max(n, 1),
            "skipped_share": sum(c.skipped > 0 for c in group) / max(n, 1),
            "repeated_share": sum(c.repeated > 0 for c in group) / max(n, 1),
            "cap_share": sum(c.hit_cap for c in group) / max(n, 1),
        }

    categories = sorted({c.category for c in cases})
    return {
        **figures(cases),
        "by_category": {k: figures([c for c in cases if c.category == k]) for k in categories},
        "bad_ids": [c.id for c in cases if c.bad],
    }


_HARD_HEAD = "| system | group | sentences | WER % | bad % | WER>50% % | skipped % | repeated % | cap % |"


def format_hard_table(summary: dict[str, Any], system: str = "model") -> str:
    """A markdown table of :func:`summarize_hard`'s figures (one row per category + all)."""
    return "\n".join([_HARD_HEAD, "|" + "---|" * 9, *_hard_rows(summary, system)])


def format_hard_tables(summaries: Sequence[dict[str, Any]]) -> str:
    """Several systems' summaries (each with its ``"system"`` name) in one table: every
    system's "all" row first, then the groups, system by system within each group."""
    groups = sorted({g for s in summaries for g in s["by_category"]})
    lines = [_HARD_HEAD, "|" + "---|" * 9]
    for group in ["all", *groups]:
        for s in summaries:
            f = s if group == "all" else s["by_category"].get(group)
            if f is not None:
                lines.extend(_hard_rows(f, s.get("system", "model"), group))
    return "\n".join(lines)


def _hard_rows(summary: dict[str, Any], system: str, only: str | None = None) -> list[str]:
    """Rows of one system: each category, then "all" (or only the figures of ``summary``
    labelled ``only``)."""
    if only is not None:
        rows = [(only, summary)]
    else:
        rows = [*summary["by_category"].items(), ("all", summary)]
    lines = []
    for name, f in rows:
        lines.append(
            f"| {system} | {name} | {f['sentences']} | {100 * f['wer']:.1f} | "
            f"{100 * f['bad_share']:.1f} | {100 * f['wer_over_50_share']:.1f} | "
            f"{100 * f['skipped_share']:.1f} | {100 * f['repeated_share']:.1f} | "
            f"{100 * f['cap_share']:.1f} |"
        )
    return lines


class _CapCounter(logging.Handler):
    """Counts the AR loop's "hit the length bound" warnings (``valle.ar.generate``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "length bound" in record.getMessage():
            self.count += 1


def synthesize_hard(
    synth: Any,
    sentences: Sequence[HardSentence],
    prompt_wav: Any,
    prompt_text: str,
    *,
    seed: int = 0,
    progress: bool = True,
) -> list[tuple[Any, int, bool]]:
    """Say every sentence with ``synth`` (a :class:`~valle.inference.Synthesizer`) in the
    prompt's voice; per sentence ``(wave (N,), sample rate, hit_cap)``. ``hit_cap``: the AR
    loop reported a row ending at its length bound (any chunk of the sentence)."""
    from tqdm import tqdm

    gen_logger = logging.getLogger("valle.ar.generate")
    out = []
    for k, s in enumerate(tqdm(sentences, desc="hard sentences", disable=not progress)):
        counter = _CapCounter()
        gen_logger.addHandler(counter)
        try:
            wave, sr = synth.synthesize(s.text, prompt_wav, prompt_text, seed=seed + k)
        finally:
            gen_logger.removeHandler(counter)
        out.append((wave, sr, counter.count > 0))
    return out
