"""Tokenization of a CutSet: codec codes (acoustic tokens) and phonemes (text tokens).

Shape legend: N samples, T code frames, Q codebooks.

Acoustic tokens (VALL-E sec. 3, 5.1): each cut's audio is encoded by a :class:`Codec` in
batches and the ``(T, Q)`` codes are stored with lhotse's array storage as a ``TemporalArray``
(``frame_shift = 1 / frame_rate``, ``temporal_dim = 0``) in the cut's custom field ``codes``;
``cut.load_codes()`` reads them back. The work is split into chunks of cuts; each finished chunk's
manifest is written atomically and skipped on the next run, so an interrupted run resumes where
it stopped, and a rerun on changed inputs encodes only the cuts whose audio changed (or is new).
The codec's facts go to ``codec.json`` beside the manifests.

Text tokens: ``supervision.custom["phonemes"]`` (``list[str]``) from the language's G2P front
end; the symbol table (``tokens.txt``) is built over the train split only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.features.io import get_writer
from lhotse.utils import fastcopy
from tqdm.auto import tqdm

from valle.codec.base import Codec
from valle.data.audio import load_cut_audio
from valle.data.codec_info import CodecInfo
from valle.data.manifests import file_stamp, save_cuts_atomic, write_json_atomic

logger = logging.getLogger(__name__)

__all__ = [
    "CODES_FIELD",
    "PHONEMES_FIELD",
    "EncodeStats",
    "encode_cuts",
    "add_phonemes",
    "build_symbol_table",
    "supervision_language",
    "cut_phonemes",
    "drop_unknown_symbols",
]

CODES_FIELD = "codes"
PHONEMES_FIELD = "phonemes"

# Storage back ends for codes. lilcom is lossy and would corrupt integer codes, so it is refused.
LOSSLESS_STORAGE = ("numpy_files", "numpy_hdf5")

# Corpus language names (lhotse recipes write "English") -> the toolkit's language codes.
_LANGUAGE_NAMES = {
    "english": "en",
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "chinese": "zh",
    "mandarin": "zh",
    "zh": "zh",
    "cmn": "zh",
    "japanese": "ja",
    "ja": "ja",
}


@dataclass(frozen=True)
class EncodeStats:
    """What one :func:`encode_cuts` call did."""

    num_cuts: int  # cuts in the output manifest
    chunks_total: int
    chunks_computed: int  # chunks encoded by this call (the others were already done)
    audio_seconds: float  # audio encoded by this call
    wall_seconds: float  # time this call spent encoding

    @property
    def speed(self) -> float:
        """Seconds of audio tokenized per second of wall time (this call)."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("nan")


# ----------------------------------------------------------------------------- codes


def _ids_digest(cuts: Sequence[Cut]) -> str:
    h = hashlib.sha1()
    for c in cuts:
        h.update(c.id.encode())
        h.update(b"\n")
    return h.hexdigest()


def _audio_key(cut: Cut) -> str:
    """What a cut's codes depend on: its recording (sources, rate, length), its span and the
    size and mtime of its audio files. A replaced or repaired wav changes the key even when
    its header (hence the recording manifest) stays the same."""
    stamps: list[list[int] | None] = []
    for src in cut.recording.sources:
        if src.type == "file":
            try:
                stamps.append(file_stamp(src.source))
            except OSError:
                stamps.append(None)
    key = {
        "recording": cut.recording.to_dict(),
        "start": cut.start,
        "duration": cut.duration,
        "channel": cut.channel,
        "files": stamps,
    }
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _same_audio_span(a: Cut, b: Cut) -> bool:
    """Chunks made before audio keys were recorded: compare what their manifests hold."""
    return a.recording.to_dict() == b.recording.to_dict() and (a.start, a.duration, a.channel) == (
        b.start,
        b.duration,
        b.channel,
    )


def _location(codes: Any) -> str:
    """Where a codes manifest's array lives (storage path and key), for consistency checks."""
    array = codes["array"] if isinstance(codes, dict) else codes.array
    if isinstance(array, dict):
        return f"{array['storage_path']}::{array['storage_key']}"
    return f"{array.storage_path}::{array.storage_key}"


@dataclass(frozen=True)
class _Stored:
    """Codes of one cut found in a finished chunk manifest."""

    cut: Cut  # as stored (recording and span the codes were made from)
    key: str | None  # its audio key; None: chunk written before keys were recorded
    trusted: bool  # False: the recorded key belongs to other codes (interrupted rewrite)

    def fits(self, cut: Cut) -> bool:
        if not self.trusted:
            return False
        if self.key is None:
            return _same_audio_span(cut, self.cut)
        return self.key == _audio_key(cut)


def _stored_codes(chunk_dir: Path) -> tuple[dict[str, list[_Stored]], dict[str, list[str]]]:
    """The codes in the finished chunk manifests of ``chunk_dir`` (any chunking): by cut id,
    and the cut ids of each chunk manifest (by file name)."""
    found: dict[str, list[_Stored]] = {}
    chunk_ids: dict[str, list[str]] = {}
    for path in sorted(chunk_dir.glob("cuts.*.jsonl.gz")):
        keys_path = path.with_name(path.name[: -len(".jsonl.gz")] + ".audio.json")
        keys = json.loads(keys_path.read_text()) if keys_path.is_file() else None
        chunk_ids[path.name] = []
        for cut in CutSet.from_file(path):
            chunk_ids[path.name].append(cut.id)
            entry = None if keys is None else keys.get(cut.id)
            if keys is None:  # written before audio keys were recorded
                item = _Stored(cut, None, True)
            elif isinstance(entry, str):  # key only (first version of the format)
                item = _Stored(cut, entry, True)
            else:  # [key, location]: the key is for these codes only if the locations agree
                ok = isinstance(entry, list) and entry[1] == _location(cut.custom[CODES_FIELD])
                item = _Stored(cut, entry[0] if ok and entry else None, ok)
            found.setdefault(cut.id, []).append(item)
    return found, chunk_ids


def _fresh_storage_path(storage_dir: Path, k: int, storage_type: str) -> Path:
    """A writer path for chunk ``k`` that no existing codes manifest can point into: codes of
    other chunks may still be read from an older ``chunk.NNNNN``, so it is never rewritten."""
    suffix = ".h5" if storage_type == "numpy_hdf5" else ""
    path = storage_dir / f"chunk.{k:05d}{suffix}"
    n = 1
    while path.exists():
        path = storage_dir / f"chunk.{k:05d}.{n}{suffix}"
        n += 1
    return path


def _batches(cuts: list[Cut], batch_size: int, max_batch_seconds: float) -> list[list[Cut]]:
    """Group cuts (longest first, to pad little) into batches bounded by count and seconds."""
    order = sorted(cuts, key=lambda c: c.duration, reverse=True)
    batches: list[list[Cut]] = []
    cur: list[Cut] = []
    cur_s = 0.0
    for c in order:
        if cur and (len(cur) >= batch_size or cur_s + c.duration > max_batch_seconds):
            batches.append(cur)
            cur, cur_s = [], 0.0
        cur.append(c)
        cur_s += c.duration
    if cur:
        batches.append(cur)
    return batches


def _load_waves(cuts: list[Cut], sample_rate: int) -> list[torch.Tensor]:
    return [load_cut_audio(c, sample_rate) for c in cuts]  # list of (N_b,)


def _check_codes(codes: torch.Tensor, codec: Codec, cut: Cut) -> np.ndarray:
    if codes.dim() != 2 or codes.shape[1] != codec.num_codebooks:
        raise RuntimeError(
            f"codec returned codes of shape {tuple(codes.shape)} for cut {cut.id}; expected "
            f"(T, {codec.num_codebooks}) — the codec breaks the valle.codec.base.Codec contract"
        )
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= codec.codebook_size):
        raise RuntimeError(
            f"codes of cut {cut.id} leave [0, {codec.codebook_size}): "
            f"min {int(codes.min())}, max {int(codes.max())}"
        )
    dtype = np.int16 if codec.codebook_size <= np.iinfo(np.int16).max + 1 else np.int32
    return codes.cpu().numpy().astype(dtype)  # (T, Q)


def encode_cuts(
    cuts: CutSet | Iterable[Cut],
    codec: Codec,
    output_dir: str | Path,
    prefix: str,
    codec_info: CodecInfo,
    chunk_size: int = 500,
    batch_size: int = 16,
    max_batch_seconds: float = 160.0,
    storage_type: str = "numpy_files",
    progress: bool = True,
) -> tuple[CutSet, EncodeStats]:
    """Encode every cut's audio with ``codec`` and attach the codes as ``cut.codes``.

    Files under ``output_dir``: ``codec.json`` (facts), ``<prefix>_codes_plan.json`` (what the
    chunks hold; a rerun with another codec or storage type is refused instead of mixing
    codes), ``<prefix>_codes_chunks/cuts.NNNNN.jsonl.gz`` (one manifest per finished chunk),
    ``<prefix>_codes/`` (array storage) and ``<prefix>_cuts_codes.jsonl.gz`` (all cuts).

    Beside each chunk manifest, ``cuts.NNNNN.audio.json`` records for each cut what its codes
    were made from (:func:`_audio_key`: recording, span, size and mtime of the audio files)
    and where they are stored. A rerun reuses the stored codes of every cut whose audio is
    unchanged, whatever chunk they were made in, and encodes the others (new cuts, replaced
    or repaired audio) into storage that no existing manifest points to (storage is never
    rewritten; codes nothing uses any more stay on disk). The output cuts are the input cuts
    with the codes attached, so fixed transcripts (or other supervision fields) always reach
    the output without encoding anything again.

    Args:
        cuts: the cuts to encode (their order defines the chunks).
        codec: any :class:`~valle.codec.base.Codec`.
        output_dir: directory for the files above (created).
        prefix: file-name prefix, e.g. ``"mini"``.
        codec_info: facts recorded in ``codec.json`` (``CodecInfo.from_codec``).
        chunk_size: cuts per resumable chunk.
        batch_size: most cuts per ``codec.encode`` call.
        max_batch_seconds: most seconds of audio per ``codec.encode`` call.
        storage_type: lhotse writer name, ``"numpy_files"`` or ``"numpy_hdf5"`` (needs h5py).
        progress: show a tqdm bar (seconds of audio).
    Returns:
        the cuts with codes attached, and what this call did.
    """
    if storage_type not in LOSSLESS_STORAGE:
        raise ValueError(
            f"storage {storage_type!r} is not lossless (or unknown); codes must be stored "
            f"exactly: use one of {list(LOSSLESS_STORAGE)}"
        )
    if chunk_size < 1 or batch_size < 1:
        raise ValueError(f"chunk_size and batch_size must be >= 1, got {chunk_size}, {batch_size}")
    if abs(codec_info.frame_rate - codec.frame_rate) > 1e-6:
        raise ValueError("codec_info does not describe this codec (frame rates differ)")
    cut_list = list(cuts)
    if not cut_list:
        raise ValueError("no cuts to encode; check the input manifest")
    ids = [c.id for c in cut_list]
    if len(set(ids)) != len(ids):
        raise ValueError("cut ids are not unique; codes are stored by cut id")

    output_dir = Path(output_dir)
    chunk_dir = output_dir / f"{prefix}_codes_chunks"
    storage_dir = output_dir / f"{prefix}_codes"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    storage_dir.mkdir(parents=True, exist_ok=True)

    chunks = [cut_list[i : i + chunk_size] for i in range(0, len(cut_list), chunk_size)]
    plan = {
        "num_cuts": len(cut_list),
        "chunk_size": chunk_size,
        "num_chunks": len(chunks),
        "cut_ids_sha1": _ids_digest(cut_list),
        "codec": codec_info.__dict__,
        "storage_type": storage_type,
    }
    plan_path = output_dir / f"{prefix}_codes_plan.json"
    plan = json.loads(json.dumps(plan))
    if plan_path.is_file():
        old = json.loads(plan_path.read_text())
        if any(old.get(k) != plan[k] for k in ("codec", "storage_type")):
            raise RuntimeError(
                f"{plan_path} records a different run (another codec or storage type); its "
                f"codes cannot be reused. Delete {chunk_dir}, {storage_dir} and {plan_path} to start over, "
                "or use another output dir."
            )
        if old != plan:
            logger.info(
                "%s: the cuts (or the chunk size) changed since the codes in %s were made; "
                "the codes of cuts whose audio did not change are reused",
                prefix,
                chunk_dir,
            )
            write_json_atomic(plan, plan_path)
    else:
        write_json_atomic(plan, plan_path)
    codec_info.to_file(output_dir / "codec.json")

    frame_shift = 1.0 / codec.frame_rate
    chunk_paths = [chunk_dir / f"cuts.{k:05d}.jsonl.gz" for k in range(len(chunks))]
    keys_paths = [chunk_dir / f"cuts.{k:05d}.audio.json" for k in range(len(chunks))]
    stored, chunk_ids = _stored_codes(chunk_dir)
    reuse: list[dict[str, Any]] = []  # per chunk: cut id -> codes manifest found on disk
    encode: list[list[Cut]] = []  # per chunk: the cuts to encode
    for chunk in chunks:
        found = {}
        for c in chunk:
            match = next((st for st in stored.get(c.id, []) if st.fits(c)), None)
            if match is not None:
                found[c.id] = match.cut.custom[CODES_FIELD]
        reuse.append(found)
        encode.append([c for c in chunk if c.id not in found])
        changed = [c.id for c in encode[-1] if c.id in stored]
        if changed:
            logger.warning(
                "%s: the audio of %d cut(s) changed since it was encoded (e.g. %s): encoding "
                "it again",
                prefix,
                len(changed),
                changed[0],
            )
    todo = [  # chunks whose manifest must be (re)written
        k
        for k, chunk in enumerate(chunks)
        if encode[k] or chunk_ids.get(chunk_paths[k].name) != [c.id for c in chunk]
    ]
    total_s = sum(c.duration for c in cut_list)
    todo_s = sum(c.duration for cuts_k in encode for c in cuts_k)
    if len(todo) < len(chunks) or todo_s < total_s:
        logger.info(
            "%s: %d of %d chunks already encoded, %.1f of %.1f s of audio to encode",
            prefix,
            len(chunks) - len(todo),
            len(chunks),
            todo_s,
            total_s,
        )
    bar = tqdm(
        total=round(total_s, 2),
        initial=round(total_s - todo_s, 2),
        unit="s",
        desc=f"codes {prefix}",
        disable=not progress,
    )
    t0 = time.perf_counter()
    done_s = 0.0
    sample_rate = codec.sample_rate
    codes_of: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:  # loads the next batch while one encodes
        for k in range(len(chunks)):
            codes_k = dict(reuse[k])
            if k in todo and encode[k]:
                batches = _batches(encode[k], batch_size, max_batch_seconds)
                writer_path = _fresh_storage_path(storage_dir, k, storage_type)
                with get_writer(storage_type)(str(writer_path), mode="w") as writer:
                    pending = pool.submit(_load_waves, batches[0], sample_rate)
                    for i, batch in enumerate(batches):
                        wavs = pending.result()  # list of (N_b,)
                        if i + 1 < len(batches):
                            pending = pool.submit(_load_waves, batches[i + 1], sample_rate)
                        with torch.inference_mode():
                            codes = codec.encode(wavs)  # list of (T_b, Q)
                        if len(codes) != len(batch):
                            raise RuntimeError(
                                f"codec returned {len(codes)} code sequences for {len(batch)} waves"
                            )
                        for cut, c in zip(batch, codes, strict=True):
                            arr = _check_codes(c, codec, cut)  # (T, Q)
                            codes_k[cut.id] = writer.store_array(
                                cut.id,
                                arr,
                                frame_shift=frame_shift,
                                temporal_dim=0,
                                start=cut.start,
                            )
                        seconds = sum(c.duration for c in batch)
                        done_s += seconds
                        bar.update(round(seconds, 2))
            if k in todo:
                chunk = chunks[k]
                keys = {c.id: [_audio_key(c), _location(codes_k[c.id])] for c in chunk}
                write_json_atomic(keys, keys_paths[k])
                chunk_cuts = CutSet.from_cuts(
                    c.with_custom(CODES_FIELD, codes_k[c.id]) for c in chunk
                )
                save_cuts_atomic(chunk_cuts, chunk_paths[k])  # last: marks the chunk finished
            codes_of.update(codes_k)
    bar.close()
    wall = time.perf_counter() - t0

    result = CutSet.from_cuts(c.with_custom(CODES_FIELD, codes_of[c.id]) for c in cut_list)
    save_cuts_atomic(result, output_dir / f"{prefix}_cuts_codes.jsonl.gz")
    stats = EncodeStats(
        num_cuts=len(result),
        chunks_total=len(chunks),
        chunks_computed=sum(1 for k in todo if encode[k]),
        audio_seconds=done_s,
        wall_seconds=wall,
    )
    if done_s > 0:
        logger.info(
            "%s: encoded %.1f s of audio in %.1f s (%.1f s of audio per second)",
            prefix,
            done_s,
            wall,
            stats.speed,
        )
        write_json_atomic(
            dict(stats.__dict__, speed_audio_s_per_s=stats.speed),
            output_dir / f"{prefix}_codes_stats.json",
        )
    return result, stats


# ----------------------------------------------------------------------------- text


def supervision_language(language: str | None, default: str | None = None) -> str:
    """Map a supervision's language (``"English"``, ``"en"``, ...) to a code in LANGUAGES."""
    if language is None:
        if default is None:
            raise ValueError(
                "supervision has no language and no default was given; pass --language en"
            )
        return default
    code = _LANGUAGE_NAMES.get(language.strip().lower())
    if code is None:
        raise ValueError(
            f"unknown supervision language {language!r}; known: {sorted(set(_LANGUAGE_NAMES))}"
        )
    return code


FrontendFactory = Callable[[str], Callable[[str], list[str]]]


def _default_frontend_factory() -> FrontendFactory:
    from valle.text import get_frontend

    return get_frontend


def add_phonemes(
    cuts: CutSet | Iterable[Cut],
    frontend_for: FrontendFactory | None = None,
    default_language: str | None = None,
    batch_size: int = 200,
    progress: bool = True,
) -> CutSet:
    """Phonemize every supervision's text into ``supervision.custom["phonemes"]``.

    Args:
        cuts: cuts whose supervisions have ``text`` (and ``language``).
        frontend_for: ``lang -> front end``; a front end maps text to tokens and may have a
            ``.batch(texts)`` method (used when present). Default: ``valle.text.get_frontend``.
        default_language: language code for supervisions with no language.
        batch_size: texts per front-end call.
    Returns:
        a new CutSet (input order) with phonemes on every supervision.
    """
    frontend_for = frontend_for or _default_frontend_factory()
    cut_list = [c for c in cuts]
    if not cut_list:
        raise ValueError("no cuts to phonemize")
    problems: list[str] = []  # every bad transcript, reported together
    by_lang: dict[str, list[tuple[int, int]]] = {}
    for i, cut in enumerate(cut_list):
        if not cut.supervisions:
            problems.append(f"cut {cut.id}: no supervision (no text to tokenize)")
            continue
        for j, sup in enumerate(cut.supervisions):
            if not isinstance(sup.text, str) or not sup.text.strip():
                problems.append(f"{_where(cut, sup)}: empty transcript {sup.text!r}")
                continue
            by_lang.setdefault(supervision_language(sup.language, default_language), []).append(
                (i, j)
            )

    phonemes: dict[tuple[int, int], list[str]] = {}
    bar = tqdm(total=sum(len(v) for v in by_lang.values()), desc="phonemes", disable=not progress)
    for lang, keys in by_lang.items():
        fe: Any = frontend_for(lang)
        for s in range(0, len(keys), batch_size):
            part = keys[s : s + batch_size]
            texts = [cut_list[i].supervisions[j].text for i, j in part]
            try:
                out: list[list[str] | None] = list(_phonemize(fe, texts))
            except ValueError:  # one bad text fails the batch: find it (and any other)
                out = []
                for key, text in zip(part, texts, strict=True):
                    try:
                        out.append(_phonemize(fe, [text])[0])
                    except ValueError as e:
                        i, j = key
                        problems.append(
                            f"{_where(cut_list[i], cut_list[i].supervisions[j])}: "
                            f"{_without_index(str(e))}"
                        )
                        out.append(None)
            for key, toks in zip(part, out, strict=True):
                if toks is None:
                    continue
                i, j = key
                if not toks:
                    problems.append(
                        f"{_where(cut_list[i], cut_list[i].supervisions[j])}: front end "
                        f"'{lang}' gave no tokens for {cut_list[i].supervisions[j].text!r}"
                    )
                    continue
                phonemes[key] = toks
            bar.update(len(part))
    bar.close()
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError(
            f"{len(problems)} transcript(s) cannot be tokenized:\n  {shown}{more}\n"
            "Fix these transcripts in the corpus (or remove the utterances), then redo the "
            "manifests and tokens from stage 1: changed corpus files are noticed and the "
            "stale manifests remade, finished codec chunks of unchanged audio are reused."
        )

    result = []
    for i, cut in enumerate(cut_list):
        sups = []
        for j, sup in enumerate(cut.supervisions):
            sups.append(sup.with_custom(PHONEMES_FIELD, phonemes[(i, j)]))
        result.append(fastcopy(cut, supervisions=sups))
    return CutSet.from_cuts(result)


def _phonemize(fe: Any, texts: list[str]) -> list[list[str]]:
    if hasattr(fe, "batch"):
        return [list(t) for t in fe.batch(texts)]
    return [list(fe(t)) for t in texts]


def _where(cut: Cut, sup: Any) -> str:
    """``utterance <id>`` (plus the supervision id when it differs), for error messages."""
    return f"utterance {cut.id}" + (f" (supervision {sup.id})" if sup.id != cut.id else "")


def _without_index(message: str) -> str:
    """Front-end batch errors name a text by its index in the batch ("text 0 (...)"); the
    caller names the utterance instead."""
    return re.sub(r"^text \d+ ", "the text ", message)


def cut_phonemes(cut: Cut) -> list[str]:
    """All phonemes of a cut (its supervisions' in order)."""
    toks: list[str] = []
    for sup in cut.supervisions:
        p = (sup.custom or {}).get(PHONEMES_FIELD)
        if p is None:
            raise ValueError(
                f"cut {cut.id} has no supervision custom['{PHONEMES_FIELD}']; run the "
                "text-token stage (stage 3) first"
            )
        toks.extend(p)
    return toks


def build_symbol_table(train_cuts: Iterable[Cut]):
    """Build the phoneme symbol table over the train split (``valle.text.SymbolTable``)."""
    from valle.text import SymbolTable

    return SymbolTable.build(cut_phonemes(c) for c in train_cuts)


def drop_unknown_symbols(cuts: CutSet, symbols, what: str = "cuts") -> CutSet:
    """Keep the cuts whose phonemes are all in ``symbols``; log how many were dropped."""
    kept = []
    unknown: dict[str, int] = {}
    for c in cuts:
        miss = [t for t in cut_phonemes(c) if t not in symbols]
        if miss:
            for t in miss:
                unknown[t] = unknown.get(t, 0) + 1
        else:
            kept.append(c)
    n_drop = len(cuts) - len(kept)
    if n_drop:
        logger.warning(
            "%s: dropped %d cut(s) with phonemes missing from tokens.txt: %s",
            what,
            n_drop,
            ", ".join(f"{t!r}x{n}" for t, n in sorted(unknown.items())[:20]),
        )
    return CutSet.from_cuts(kept)
