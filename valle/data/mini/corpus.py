"""Stage 0 of the mini recipe: synthesise the offline multi-speaker corpus.

Layout under ``corpus_dir``::

    wav/<speaker>/<utt_id>.wav    16-bit mono PCM at the engine's native rate
    wav/<speaker>/<utt_id>.json   metadata of that utterance (written after the wav: its marker)
    metadata.jsonl                one line per planned utterance, in plan order

An utterance is skipped when its json exists, describes the same text and engine settings, and its
wav has the recorded length; so a run can be interrupted and resumed, and a second run rewrites
nothing. Work is spread over ``num_jobs`` processes (one festival process per batch).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from valle.data.mini.engines import (
    shift_pitch,
    synthesize_espeak,
    synthesize_festival,
    synthesize_flite,
    tidy_phones,
    wav_info,
)
from valle.data.mini.voices import (
    VOICES,
    PlannedUtterance,
    Voice,
    plan_corpus,
    voice_by_speaker,
)
from valle.io.atomic import atomic_write_text

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.jsonl"
_BATCH = 16


def wav_path(corpus_dir: Path, speaker: str, utt_id: str) -> Path:
    """Where the wav of ``utt_id`` lives."""
    return corpus_dir / "wav" / speaker / f"{utt_id}.wav"


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (:func:`valle.io.atomic.atomic_write_text`)."""
    atomic_write_text(path, text)


def _load_record(corpus_dir: Path, utt: PlannedUtterance) -> dict[str, Any] | None:
    """The stored metadata of ``utt`` if its files are complete and up to date, else None."""
    wav = wav_path(corpus_dir, utt.voice.speaker, utt.id)
    meta = wav.with_suffix(".json")
    if not (wav.is_file() and meta.is_file()):
        return None
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
        if record.get("text") != utt.text or record.get("settings") != utt.voice.settings():
            return None
        if wav_info(wav) != (record["sample_rate"], record["num_samples"]):
            return None
    except (ValueError, KeyError, OSError):
        return None
    return record


def _record(
    utt: PlannedUtterance, wav: Path, phones: list[tuple[str, float, float]]
) -> dict[str, Any]:
    voice = utt.voice
    sample_rate, num_samples = wav_info(wav)
    duration = num_samples / sample_rate
    return {
        "id": utt.id,
        "speaker": voice.speaker,
        "engine": voice.engine,
        "voice": voice.name,
        "source_speaker": voice.source_speaker,
        "language": voice.language,
        "sentence_id": utt.sentence_id,
        "text": utt.text,
        "wav": str(Path("wav") / voice.speaker / wav.name),
        "sample_rate": sample_rate,
        "num_samples": num_samples,
        "duration": duration,
        "phone_set": voice.phone_set,
        "phones": [list(p) for p in tidy_phones(phones, duration)],
        "settings": voice.settings(),
    }


def _synthesize_batch(corpus_dir: str, speaker: str, items: list[tuple[str, str, str]]) -> int:
    """Worker: synthesise ``[(utt_id, sentence_id, text), ...]`` of one speaker; returns count."""
    root = Path(corpus_dir)
    voice = voice_by_speaker(speaker)
    utts = [PlannedUtterance(utt_id, voice, sid, text) for utt_id, sid, text in items]
    out_dir = root / "wav" / speaker
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {u.id: wav_path(root, speaker, u.id) for u in utts}
    if voice.engine == "festival":
        phones = synthesize_festival(
            [(u.id, u.text, paths[u.id]) for u in utts], voice.name, stretch=voice.stretch
        )
    else:
        phones = {}
        for u in utts:
            if voice.engine == "flite":
                phones[u.id] = synthesize_flite(
                    u.text, voice.name, paths[u.id], stretch=voice.stretch
                )
            elif voice.engine == "espeak":
                phones[u.id] = synthesize_espeak(
                    u.text, voice.name, paths[u.id], rate=voice.rate, pitch=voice.pitch
                )
            else:
                raise ValueError(f"unknown engine {voice.engine!r} for speaker {speaker}")
    if voice.shift:
        for u in utts:
            shift_pitch(paths[u.id], voice.shift)
    for u in utts:
        record = _record(u, paths[u.id], phones[u.id])
        write_text_atomic(
            paths[u.id].with_suffix(".json"), json.dumps(record, ensure_ascii=False) + "\n"
        )
    return len(utts)


def _batches(todo: list[PlannedUtterance]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    by_speaker: dict[str, list[PlannedUtterance]] = {}
    for utt in todo:
        by_speaker.setdefault(utt.voice.speaker, []).append(utt)
    batches = []
    # festival batches are the slowest: start them first so they do not straggle at the end.
    order = sorted(by_speaker, key=lambda s: by_speaker[s][0].voice.engine != "festival")
    for speaker in order:
        utts = by_speaker[speaker]
        for i in range(0, len(utts), _BATCH):
            batches.append((speaker, [(u.id, u.sentence_id, u.text) for u in utts[i : i + _BATCH]]))
    return batches


def make_mini_corpus(
    corpus_dir: Path,
    *,
    num_jobs: int = 2,
    seed: int = 0,
    scale: float = 1.0,
    voices: tuple[Voice, ...] | None = None,
    sentences_per_utterance: Mapping[str, int] | None = None,
) -> None:
    """Synthesise the mini corpus into ``corpus_dir`` (idempotent and resumable).

    Args:
        corpus_dir: output folder (created).
        num_jobs: worker processes running the engines.
        seed: shuffles which sentences each voice reads.
        scale: fraction of the full corpus (1.0: Mandarin and Japanese about 25 minutes
            each, English most of the rest; tests use ~0.01).
        voices: restrict to these voices (default: all of ``VOICES``).
        sentences_per_utterance: consecutive sentences read as one utterance, per language
            (default ``SENTENCES_PER_UTTERANCE``: two in English, one in Mandarin and Japanese).
    """
    if num_jobs < 1:
        raise ValueError(f"num_jobs must be >= 1, got {num_jobs}")
    corpus_dir = Path(corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_corpus(
        seed=seed,
        scale=scale,
        voices=VOICES if voices is None else voices,
        sentences_per_utterance=sentences_per_utterance,
    )
    todo = [utt for utt in plan if _load_record(corpus_dir, utt) is None]
    logger.info("mini corpus: %d planned utterances, %d to synthesise", len(plan), len(todo))
    start = time.perf_counter()
    batches = _batches(todo)
    if batches:
        if num_jobs == 1:
            for speaker, items in batches:
                _synthesize_batch(str(corpus_dir), speaker, items)
        else:
            # spawn: the parent may hold torch/OpenMP state that must not be forked.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=num_jobs, mp_context=context) as pool:
                futures = [
                    pool.submit(_synthesize_batch, str(corpus_dir), s, i) for s, i in batches
                ]
                done = 0
                for future in as_completed(futures):
                    done += future.result()
                    logger.info("mini corpus: %d / %d utterances synthesised", done, len(todo))
    records = []
    for utt in plan:
        record = _load_record(corpus_dir, utt)
        if record is None:
            raise RuntimeError(f"{utt.id} is missing or invalid after synthesis; run again")
        records.append(record)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    meta = corpus_dir / METADATA_FILE
    if not meta.is_file() or meta.read_text(encoding="utf-8") != text:
        write_text_atomic(meta, text)
    logger.info(
        "mini corpus: %d utterances, %.1f min of audio, synthesis took %.1f s",
        len(records),
        sum(r["duration"] for r in records) / 60,
        time.perf_counter() - start,
    )


def load_metadata(corpus_dir: Path) -> list[dict[str, Any]]:
    """Read ``metadata.jsonl`` written by :func:`make_mini_corpus`."""
    meta = Path(corpus_dir) / METADATA_FILE
    if not meta.is_file():
        raise FileNotFoundError(
            f"{meta} not found: run stage 0 (valle.data.mini_corpus.make_mini_corpus) first"
        )
    with meta.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of a corpus' metadata: utterances, hours, and per-language/per-speaker minutes."""
    per_language: dict[str, float] = {}
    per_speaker: dict[str, float] = {}
    count: dict[str, int] = {}
    for r in records:
        per_language[r["language"]] = per_language.get(r["language"], 0.0) + r["duration"] / 60
        per_speaker[r["speaker"]] = per_speaker.get(r["speaker"], 0.0) + r["duration"] / 60
        count[r["speaker"]] = count.get(r["speaker"], 0) + 1
    return {
        "utterances": len(records),
        "hours": sum(r["duration"] for r in records) / 3600,
        "speakers": len(per_speaker),
        "minutes_per_language": per_language,
        "minutes_per_speaker": per_speaker,
        "utterances_per_speaker": count,
    }
