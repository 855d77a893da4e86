"""LibriTTS (training) and LibriSpeech test-clean (evaluation) through lhotse's own recipes.

This module is a thin wrapper: download and manifest parsing are ``lhotse.recipes``'
``download_libritts`` / ``prepare_libritts`` and ``download_librispeech`` /
``prepare_librispeech``. What it adds is the toolkit's naming (one cut manifest per corpus with
the subset recorded on each supervision, so the split stage can route cuts) and errors that say
what to do. VALL-E trains on LibriLight and evaluates on LibriSpeech test-clean (VALL-E, sec. 5.1);
this toolkit's LibriTTS recipe follows the common open re-implementation setting.
"""

from __future__ import annotations

import json
import logging
import re
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

from valle.data.audio import AudioProblem, BadAudioError, check_audio_files
from valle.data.manifests import (
    save_cuts_atomic,
    tree_fingerprint,
    with_recording_ids,
    write_json_atomic,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BadAudioError",
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

# wav files lhotse's prepare_libritts leaves out (AppleDouble files, one known corrupt file)
_LHOTSE_LIBRITTS_EXCLUDE = re.compile(r"^(\._.+|1092_134562_000013_000004\.wav)$")


# ----------------------------------------------------------------------------- stale caches


def _inputs_record_path(output_dir: Path, prefix: str, part: str) -> Path:
    return output_dir / f"{prefix}_inputs_{part}.json"


def _lhotse_part_manifests(output_dir: Path, prefix: str, part: str) -> list[Path]:
    return [
        output_dir / f"{prefix}_{kind}_{part}.jsonl.gz" for kind in ("recordings", "supervisions")
    ]


def _check_part_inputs(
    part_dir: Path, output_dir: Path, prefix: str, part: str, audio: list[Path], num_jobs: int
) -> tuple[dict | None, dict[str, AudioProblem]]:
    """Make lhotse's cached manifests of one part trustworthy, and check its audio.

    lhotse's recipes reuse ``<prefix>_{recordings,supervisions}_<part>.jsonl.gz`` whenever they
    exist, so a fixed transcript or replaced wav would never reach the manifests. The
    fingerprint of the part's files (:func:`~valle.data.manifests.tree_fingerprint`) is
    recorded in ``<prefix>_inputs_<part>.json`` beside them; when it differs (or was never
    recorded) the cached manifests are deleted so that lhotse reads the part again.

    Returns:
        the record to write once the manifests are made (``None``: the cache is current),
        and the audio problems found in the part, by path relative to ``part_dir``.
    """
    fingerprint = tree_fingerprint(part_dir)
    record_path = _inputs_record_path(output_dir, prefix, part)
    cached = _lhotse_part_manifests(output_dir, prefix, part)
    old = json.loads(record_path.read_text()) if record_path.is_file() else None
    if (
        old is not None
        and old.get("fingerprint") == fingerprint
        and all(p.is_file() for p in cached)
    ):
        bad = {rel: AudioProblem(kind, detail) for rel, (kind, detail) in old["bad_audio"].items()}
        return None, bad
    if any(p.is_file() for p in cached):
        why = "changed since" if old is not None else "have no fingerprint recorded by"
        logger.info(
            "%s %s: the corpus files %s the cached manifests (%s): reading the part again",
            prefix,
            part,
            why,
            ", ".join(p.name for p in cached),
        )
        for p in cached:
            p.unlink(missing_ok=True)
    found = check_audio_files(audio, num_jobs=num_jobs)
    bad = {p.relative_to(part_dir).as_posix(): problem for p, problem in found.items()}
    record = {
        "fingerprint": fingerprint,
        "bad_audio": {rel: [pr.kind, pr.detail] for rel, pr in bad.items()},
    }
    return record, bad


def _resolve_bad_audio(
    bad: dict[str, dict[str, AudioProblem]], corpus_dir: Path, skip_bad_audio: bool
) -> set[str]:
    """Raise for bad audio that cannot be skipped; return the recording ids to leave out."""

    def listing(items: list[tuple[str, str, AudioProblem]]) -> str:
        shown = "\n".join(f"  {corpus_dir / part / rel}: {pr}" for part, rel, pr in items[:20])
        more = f"\n  ... and {len(items) - 20} more" if len(items) > 20 else ""
        return shown + more

    items = [(part, rel, pr) for part, files in bad.items() for rel, pr in sorted(files.items())]
    hard = [i for i in items if i[2].kind != "truncated"]
    truncated = [i for i in items if i[2].kind == "truncated"]
    if hard:
        raise BadAudioError(
            f"{len(hard)} audio file(s) cannot be read:\n{listing(hard)}\n"
            "Re-download or re-create them, or move them out of the corpus directory (lhotse "
            "reads every .wav there; the transcripts of missing files are skipped with a "
            "warning), then rerun stage 1."
        )
    if truncated and not skip_bad_audio:
        raise BadAudioError(
            f"{len(truncated)} truncated audio file(s) (the header promises more samples "
            f"than the file holds):\n{listing(truncated)}\n"
            "Re-download or re-create them, or leave them out of the manifests with "
            "--skip-bad-audio (egs/libritts/prepare.sh --skip-bad-audio true)."
        )
    for part, rel, pr in truncated:
        logger.warning("left out %s (--skip-bad-audio): %s", corpus_dir / part / rel, pr)
    return {Path(rel).stem for _, rel, _ in truncated}


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
    skip_bad_audio: bool = False,
) -> CutSet:
    """Parse LibriTTS with ``lhotse.recipes.prepare_libritts`` and write one cut manifest.

    Every wav is checked first (:func:`~valle.data.audio.check_audio_file`): unreadable or
    empty files are an error that lists them; truncated files are too, unless
    ``skip_bad_audio`` leaves them out (each with a warning). lhotse's cached per-part
    manifests are redone when the part's files changed since they were made
    (``libritts_inputs_<part>.json`` records their fingerprint), so a fixed transcript gets in.

    Args:
        corpus_dir: the ``LibriTTS`` directory holding ``<part>/<speaker>/<chapter>/...``
            (a parent directory that contains ``LibriTTS/`` is accepted too).
        output_dir: where lhotse's per-part manifests and ``libritts_cuts_all.jsonl.gz`` go.
        parts: parts to prepare; ``None`` = every part present in ``corpus_dir``.
        num_jobs: parallel workers for lhotse's scan.
        skip_bad_audio: leave truncated wav files out instead of failing.
    Returns:
        all cuts; each supervision carries ``custom["subset"]`` (the LibriTTS part).
    Raises:
        BadAudioError: corrupt, empty or (without ``skip_bad_audio``) truncated audio.
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
    records, bad = {}, {}
    for part in parts:
        part_dir = corpus_dir / part
        audio = [p for p in part_dir.rglob("*.wav") if not _LHOTSE_LIBRITTS_EXCLUDE.match(p.name)]
        records[part], bad[part] = _check_part_inputs(
            part_dir, output_dir, "libritts", part, audio, num_jobs
        )
    left_out = _resolve_bad_audio(bad, corpus_dir, skip_bad_audio)
    manifests = prepare_libritts(
        corpus_dir=corpus_dir, dataset_parts=parts, output_dir=output_dir, num_jobs=num_jobs
    )
    for part, record in records.items():
        if record is not None:
            write_json_atomic(record, _inputs_record_path(output_dir, "libritts", part))
    all_cuts = []
    for part in parts:
        m = manifests[part]
        cuts = with_recording_ids(
            CutSet.from_manifests(recordings=m["recordings"], supervisions=m["supervisions"])
        )
        if left_out:
            cuts = cuts.filter(lambda c: c.recording_id not in left_out).to_eager()
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
    part_dir = corpus_dir / "test-clean"
    record, bad = _check_part_inputs(
        part_dir,
        output_dir,
        "librispeech",
        "test-clean",
        sorted(part_dir.rglob("*.flac")),
        num_jobs,
    )
    _resolve_bad_audio({"test-clean": bad}, corpus_dir, skip_bad_audio=False)
    manifests = prepare_librispeech(
        corpus_dir=corpus_dir,
        dataset_parts=["test-clean"],
        output_dir=output_dir,
        num_jobs=num_jobs,
    )
    if record is not None:
        write_json_atomic(record, _inputs_record_path(output_dir, "librispeech", "test-clean"))
    m = manifests["test-clean"]
    cuts = with_recording_ids(
        CutSet.from_manifests(recordings=m["recordings"], supervisions=m["supervisions"])
    )
    save_cuts_atomic(cuts, output_dir / "librispeech_cuts_test-clean.jsonl.gz")
    return cuts
