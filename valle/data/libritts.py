"""LibriTTS (training) and LibriSpeech test-clean (evaluation) through lhotse's own recipes.

This module is a thin wrapper: download and manifest parsing are ``lhotse.recipes``'
``download_libritts`` / ``prepare_libritts`` and ``download_librispeech`` /
``prepare_librispeech``. What it adds is the toolkit's naming (one cut manifest per corpus with
the subset recorded on each supervision, so the split stage can route cuts) and errors that say
what to do. VALL-E trains on LibriLight and evaluates on LibriSpeech test-clean (VALL-E, sec. 5.1);
this toolkit's LibriTTS recipe follows the common open re-implementation setting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from lhotse import CutSet
from lhotse.recipes import (
    download_librispeech,
    download_libritts,
    prepare_librispeech,
    prepare_libritts,
)
from lhotse.recipes.libritts import LIBRITTS

from valle.data.manifests import save_cuts_atomic, with_recording_ids

logger = logging.getLogger(__name__)

__all__ = [
    "LIBRITTS_PARTS",
    "LIBRITTS_SPLITS",
    "download_libritts_parts",
    "prepare_libritts_cuts",
    "download_librispeech_test_clean",
    "prepare_librispeech_test_clean_cuts",
    "libritts_split_of",
]

LIBRITTS_PARTS: tuple[str, ...] = tuple(LIBRITTS)

# subset -> split; subsets not listed (dev-other, test-other) are left out of the splits.
LIBRITTS_SPLITS: dict[str, str] = {
    "train-clean-100": "train",
    "train-clean-360": "train",
    "train-other-500": "train",
    "dev-clean": "dev",
    "test-clean": "test",
}

SUBSET_FIELD = "subset"


def _check_parts(parts: Sequence[str]) -> list[str]:
    parts = list(parts)
    bad = [p for p in parts if p not in LIBRITTS_PARTS]
    if bad:
        raise ValueError(f"unknown LibriTTS part(s) {bad}; choose from {list(LIBRITTS_PARTS)}")
    if not parts:
        raise ValueError("no LibriTTS parts given; pass e.g. --parts train-clean-100 dev-clean")
    return parts


def download_libritts_parts(target_dir: str | Path, parts: Sequence[str]) -> Path:
    """Download and extract LibriTTS parts with lhotse (``<target_dir>/LibriTTS/<part>/...``).

    Returns the corpus directory ``<target_dir>/LibriTTS``.
    """
    parts = _check_parts(parts)
    download_libritts(target_dir=target_dir, dataset_parts=parts)
    return Path(target_dir) / "LibriTTS"


def _find_parts(corpus_dir: Path) -> list[str]:
    return [p for p in LIBRITTS_PARTS if (corpus_dir / p).is_dir()]


def prepare_libritts_cuts(
    corpus_dir: str | Path,
    output_dir: str | Path,
    parts: Sequence[str] | None = None,
    num_jobs: int = 1,
) -> CutSet:
    """Parse LibriTTS with ``lhotse.recipes.prepare_libritts`` and write one cut manifest.

    Args:
        corpus_dir: the ``LibriTTS`` directory holding ``<part>/<speaker>/<chapter>/...``
            (a parent directory that contains ``LibriTTS/`` is accepted too).
        output_dir: where lhotse's per-part manifests and ``libritts_cuts_all.jsonl.gz`` go.
        parts: parts to prepare; ``None`` = every part present in ``corpus_dir``.
        num_jobs: parallel workers for lhotse's scan.
    Returns:
        all cuts; each supervision carries ``custom["subset"]`` (the LibriTTS part).
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(
            f"LibriTTS directory {corpus_dir} not found; run stage 0 (download) or pass "
            "--corpus-dir pointing at the directory that holds dev-clean/, train-clean-100/, ..."
        )
    if not _find_parts(corpus_dir) and (corpus_dir / "LibriTTS").is_dir():
        corpus_dir = corpus_dir / "LibriTTS"
    present = _find_parts(corpus_dir)
    parts = present if parts is None else _check_parts(parts)
    missing = [p for p in parts if p not in present]
    if missing or not parts:
        raise FileNotFoundError(
            f"LibriTTS part(s) {missing or list(LIBRITTS_PARTS)} not found under {corpus_dir}; "
            f"found {present}. Download them (stage 0) or change --parts."
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifests = prepare_libritts(
        corpus_dir=corpus_dir, dataset_parts=parts, output_dir=output_dir, num_jobs=num_jobs
    )
    all_cuts = []
    for part in parts:
        m = manifests[part]
        cuts = with_recording_ids(
            CutSet.from_manifests(recordings=m["recordings"], supervisions=m["supervisions"])
        )
        for cut in cuts:
            for sup in cut.supervisions:
                sup.custom = dict(sup.custom or {}, **{SUBSET_FIELD: part})
            all_cuts.append(cut)
        logger.info("LibriTTS %s: %d cuts", part, len(cuts))
    cuts = CutSet.from_cuts(all_cuts)
    save_cuts_atomic(cuts, output_dir / "libritts_cuts_all.jsonl.gz")
    return cuts


def libritts_split_of(cut) -> str | None:
    """The split ("train", "dev", "test") a LibriTTS cut belongs to, or ``None`` (unused part)."""
    sup = cut.supervisions[0]
    subset = (sup.custom or {}).get(SUBSET_FIELD)
    if subset is None:
        raise ValueError(
            f"cut {cut.id} has no supervision custom['{SUBSET_FIELD}']; make LibriTTS cuts "
            "with valle.data.libritts.prepare_libritts_cuts (stage 1)"
        )
    return LIBRITTS_SPLITS.get(subset)


def download_librispeech_test_clean(target_dir: str | Path) -> Path:
    """Download LibriSpeech test-clean with lhotse (for the zero-shot evaluation, VALL-E sec. 5.1)."""
    download_librispeech(target_dir=target_dir, dataset_parts=["test-clean"])
    return Path(target_dir) / "LibriSpeech"


def prepare_librispeech_test_clean_cuts(
    corpus_dir: str | Path, output_dir: str | Path, num_jobs: int = 1
) -> CutSet:
    """Parse LibriSpeech test-clean with lhotse; writes ``librispeech_cuts_test-clean.jsonl.gz``."""
    corpus_dir = Path(corpus_dir)
    if not (corpus_dir / "test-clean").is_dir() and (corpus_dir / "LibriSpeech").is_dir():
        corpus_dir = corpus_dir / "LibriSpeech"
    if not (corpus_dir / "test-clean").is_dir():
        raise FileNotFoundError(
            f"{corpus_dir}/test-clean not found; download it first "
            "(valle-prepare librispeech-download) or fix --corpus-dir"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifests = prepare_librispeech(
        corpus_dir=corpus_dir,
        dataset_parts=["test-clean"],
        output_dir=output_dir,
        num_jobs=num_jobs,
    )
    m = manifests["test-clean"]
    cuts = with_recording_ids(
        CutSet.from_manifests(recordings=m["recordings"], supervisions=m["supervisions"])
    )
    save_cuts_atomic(cuts, output_dir / "librispeech_cuts_test-clean.jsonl.gz")
    return cuts
