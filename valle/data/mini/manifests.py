"""Stages 1 and 4 of the mini recipe: lhotse manifests and the zero-shot splits."""

from __future__ import annotations

import logging
import random
from pathlib import Path

from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.supervision import AlignmentItem

from valle.data.audio import BadAudioError, check_audio_file
from valle.data.mini.corpus import load_metadata
from valle.data.mini.voices import MINI_TEST_SPEAKERS

logger = logging.getLogger(__name__)

RECORDINGS_FILE = "mini_recordings_all.jsonl.gz"
SUPERVISIONS_FILE = "mini_supervisions_all.jsonl.gz"


def _save_atomic(manifest: RecordingSet | SupervisionSet, path: Path) -> None:
    from valle.io.atomic import atomic_path

    with atomic_path(path, keep_suffix=True) as tmp:  # same suffixes: lhotse picks the format
        manifest.to_file(tmp)


def prepare_mini_manifests(
    corpus_dir: Path, output_dir: Path | None = None
) -> dict[str, RecordingSet | SupervisionSet]:
    """Build lhotse manifests of the corpus made by ``make_mini_corpus``.

    Each supervision covers its whole recording and carries ``text``, ``language`` ("en", "zh",
    "ja"), ``speaker``, the engine's phone timings as ``alignment["phone"]`` (engine symbols;
    ``custom["phone_set"]`` is "cmu" or "espeak") and ``custom`` engine facts.

    Returns ``{"recordings": RecordingSet, "supervisions": SupervisionSet}``; with ``output_dir``
    also writes ``mini_recordings_all.jsonl.gz`` and ``mini_supervisions_all.jsonl.gz`` there
    atomically.
    """
    corpus_dir = Path(corpus_dir).resolve()
    records = load_metadata(corpus_dir)
    recordings = []
    supervisions = []
    for r in records:
        wav = corpus_dir / r["wav"]
        if not wav.is_file():
            raise FileNotFoundError(f"{wav} listed in metadata.jsonl is missing: rerun stage 0")
        problem = check_audio_file(wav)
        if problem is not None:
            raise BadAudioError(
                f"{wav}: {problem}; delete it and rerun stage 0, which makes it again"
            )
        recording = Recording.from_file(wav, recording_id=r["id"])
        if recording.num_samples != r["num_samples"]:
            raise ValueError(
                f"{wav} has {recording.num_samples} samples, metadata says {r['num_samples']}: rerun stage 0"
            )
        recordings.append(recording)
        alignment = None
        if r["phones"]:
            alignment = {
                "phone": [AlignmentItem(sym, start, dur) for sym, start, dur in r["phones"]]
            }
        supervisions.append(
            SupervisionSegment(
                id=r["id"],
                recording_id=r["id"],
                start=0.0,
                duration=recording.duration,
                channel=0,
                text=r["text"],
                language=r["language"],
                speaker=r["speaker"],
                alignment=alignment,
                custom={
                    "phone_set": r["phone_set"],
                    "engine": r["engine"],
                    "voice": r["voice"],
                    "source_speaker": r["source_speaker"],
                    "sentence_id": r["sentence_id"],
                },
            )
        )
    manifests: dict[str, RecordingSet | SupervisionSet] = {
        "recordings": RecordingSet.from_recordings(recordings),
        "supervisions": SupervisionSet.from_segments(supervisions),
    }
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        _save_atomic(manifests["recordings"], output_dir / RECORDINGS_FILE)
        _save_atomic(manifests["supervisions"], output_dir / SUPERVISIONS_FILE)
    logger.info("mini manifests: %d recordings", len(recordings))
    return manifests


def _speaker(cut) -> str:  # type: ignore[no-untyped-def]
    if not cut.supervisions or cut.supervisions[0].speaker is None:
        raise ValueError(
            f"cut {cut.id} has no supervision with a speaker; make cuts from the mini manifests"
        )
    return cut.supervisions[0].speaker


def split_mini(cuts: CutSet, *, dev_per_speaker: int = 2, seed: int = 0) -> dict[str, CutSet]:
    """Zero-shot split: ``{"train", "dev", "test"}``.

    ``test`` holds every cut of :data:`MINI_TEST_SPEAKERS` (speakers unseen in training, as in
    the zero-shot evaluation of the VALL-E papers); ``dev`` holds ``dev_per_speaker`` random cuts of
    each training speaker (fewer if that would leave the speaker without training cuts);
    ``train`` the rest. No test speaker appears in train or dev.
    """
    if dev_per_speaker < 0:
        raise ValueError(f"dev_per_speaker must be >= 0, got {dev_per_speaker}")
    test_speakers = set(MINI_TEST_SPEAKERS)
    by_speaker: dict[str, list[str]] = {}
    test_ids: set[str] = set()
    for cut in cuts:
        speaker = _speaker(cut)
        if speaker in test_speakers:
            test_ids.add(cut.id)
        else:
            by_speaker.setdefault(speaker, []).append(cut.id)
    dev_ids: set[str] = set()
    rng = random.Random(seed)
    for speaker in sorted(by_speaker):
        ids = sorted(by_speaker[speaker])
        take = min(dev_per_speaker, len(ids) - 1)
        if take > 0:
            dev_ids.update(rng.sample(ids, take))
    splits = {
        "train": cuts.filter(lambda c: c.id not in test_ids and c.id not in dev_ids).to_eager(),
        "dev": cuts.filter(lambda c: c.id in dev_ids).to_eager(),
        "test": cuts.filter(lambda c: c.id in test_ids).to_eager(),
    }
    logger.info("mini split: %s", {k: len(v) for k, v in splits.items()})
    return splits
