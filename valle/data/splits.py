"""Train/dev/test splits per corpus, and the summary table printed at the end of preparation.

Splits are decided by the corpus's own rules: the mini corpus holds out whole speakers
(``valle.data.mini_corpus.split_mini``, zero-shot: test speakers are unseen, VALL-E sec. 5.1),
LibriTTS uses its subsets (``valle.data.libritts.LIBRITTS_SPLITS``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from lhotse import CutSet

from valle.data.manifests import save_cuts_atomic

logger = logging.getLogger(__name__)

__all__ = ["SPLITS", "CORPORA", "split_cuts", "summarize", "format_summary", "write_splits"]

SPLITS = ("train", "dev", "test")


def _split_mini(cuts: CutSet) -> dict[str, CutSet]:
    from valle.data.mini_corpus import split_mini

    return dict(split_mini(cuts))


def _split_libritts(cuts: CutSet) -> dict[str, CutSet]:
    from valle.data.libritts import libritts_split_of

    parts: dict[str, list] = {s: [] for s in SPLITS}
    unused = 0
    for c in cuts:
        split = libritts_split_of(c)
        if split is None:
            unused += 1
        else:
            parts[split].append(c)
    if unused:
        logger.info("libritts: %d cut(s) from subsets outside the splits left out", unused)
    return {s: CutSet.from_cuts(v) for s, v in parts.items()}


def _split_librispeech(cuts: CutSet) -> dict[str, CutSet]:
    """LibriSpeech test-clean is evaluation data only (VALL-E sec. 5.1)."""
    return {"train": CutSet.from_cuts([]), "dev": CutSet.from_cuts([]), "test": cuts}


CORPORA: dict[str, Callable[[CutSet], dict[str, CutSet]]] = {
    "mini": _split_mini,
    "libritts": _split_libritts,
    "librispeech": _split_librispeech,
}


def split_cuts(cuts: CutSet, corpus: str) -> dict[str, CutSet]:
    """Split ``cuts`` into ``{"train", "dev", "test"}`` by ``corpus``'s rules."""
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; choose one of {sorted(CORPORA)}")
    splits = CORPORA[corpus](cuts)
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise RuntimeError(f"{corpus} splitter returned no {missing} split")
    return {s: splits[s] for s in SPLITS}


def summarize(splits: dict[str, CutSet]) -> list[dict[str, float | int | str]]:
    """Hours, speakers and utterances per split (and the total)."""
    rows: list[dict[str, float | int | str]] = []
    all_spk: set[str] = set()
    tot_s, tot_n = 0.0, 0
    for name, cuts in splits.items():
        secs = sum(c.duration for c in cuts)
        spk = {s.speaker for c in cuts for s in c.supervisions if s.speaker is not None}
        rows.append(
            {"split": name, "hours": secs / 3600, "speakers": len(spk), "utterances": len(cuts)}
        )
        all_spk |= spk
        tot_s += secs
        tot_n += len(cuts)
    rows.append(
        {"split": "total", "hours": tot_s / 3600, "speakers": len(all_spk), "utterances": tot_n}
    )
    return rows


def format_summary(rows: list[dict[str, float | int | str]]) -> str:
    """A fixed-width table of :func:`summarize` rows."""
    lines = [f"{'split':<8} {'hours':>9} {'speakers':>9} {'utterances':>11}"]
    for r in rows:
        lines.append(
            f"{r['split']!s:<8} {float(r['hours']):>9.3f} {int(r['speakers']):>9d} "
            f"{int(r['utterances']):>11d}"
        )
    return "\n".join(lines) + "\n"


def write_splits(splits: dict[str, CutSet], output_dir: str | Path, prefix: str) -> dict[str, Path]:
    """Write ``<prefix>_cuts_{train,dev,test}.jsonl.gz`` atomically; return the paths."""
    output_dir = Path(output_dir)
    paths = {}
    for name, cuts in splits.items():
        if len(cuts) == 0:
            logger.warning("%s split %s is empty", prefix, name)
        paths[name] = save_cuts_atomic(cuts, output_dir / f"{prefix}_cuts_{name}.jsonl.gz")
    return paths
