"""Running the speech engines of the mini corpus: flite, festival, espeak-ng.

Each function writes a 16-bit mono PCM wav at the engine's native sample rate and returns the
engine's own phone timings ``[(phone, start_s, end_s), ...]``:

- flite: ``-psdur`` prints every segment with its end time (CMU phones, ``pau`` for silence);
- festival: a Scheme batch prints ``(item.feat seg "end")`` for every item of the ``Segment``
  relation (CMU/radio phones), one festival process per batch of utterances;
- espeak-ng: phoneme events of the C library (see :mod:`valle.data.mini.espeak`).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
import wave
from pathlib import Path

import soundfile as sf

from valle.data.mini.espeak import espeak_synth
from valle.io.atomic import atomic_open

Phones = list[tuple[str, float, float]]

_FESTIVAL_VOICE_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}


def write_wav_atomic(path: Path, pcm: bytes, sample_rate: int) -> None:
    """Write 16-bit mono PCM as a wav file atomically (:mod:`valle.io.atomic`)."""
    with atomic_open(path, "wb") as f, wave.open(f, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)


def wav_info(path: Path) -> tuple[int, int]:
    """``(sample_rate, num_samples)`` of a mono 16-bit PCM wav; ``ValueError`` if it is not one.

    The frame count comes from the file's real size (libsndfile), so a truncated file whose
    header still promises the full length is caught.
    """
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise ValueError(f"{path}: not a readable wav ({e})") from e
    if info.channels != 1 or info.subtype != "PCM_16":
        raise ValueError(f"{path}: expected mono 16-bit PCM, got {info.channels} ch {info.subtype}")
    return int(info.samplerate), int(info.frames)


def tidy_phones(phones: Phones, duration: float) -> list[tuple[str, float, float]]:
    """Clip timings to the audio, drop empty items; returns ``[(phone, start, duration)]``.

    Engines round their times, so the last end can pass the audio end by a few milliseconds.
    """
    out: list[tuple[str, float, float]] = []
    limit = math.floor(duration * 1e5) / 1e5
    last_end = 0.0
    for symbol, start, end in phones:
        start = round(max(start, last_end), 5)
        end = min(round(end, 5), limit)
        if end - start < 1e-4:
            continue
        out.append((symbol, start, round(end - start, 5)))
        last_end = end
    return out


def _ends_to_phones(pairs: list[tuple[str, float]]) -> Phones:
    phones: Phones = []
    start = 0.0
    for symbol, end in pairs:
        phones.append((symbol, start, end))
        start = max(start, end)
    return phones


def _move_into_place(tmp: Path, path: Path, what: str) -> tuple[int, int]:
    if not tmp.is_file():
        raise RuntimeError(f"{what} wrote no audio to {tmp}")
    info = wav_info(tmp)
    os.replace(tmp, path)
    return info


def shift_pitch(path: Path, cents: int) -> None:
    """Shift the pitch and formants of a wav by ``cents`` in place, keeping its duration
    (``sox pitch``), so the engine's phone timings still hold; atomic."""
    rate, frames = wav_info(path)
    tmp = path.with_name(f".{path.stem}.shift.wav.tmp")
    cmd = ["sox", str(path), "-b", "16", "-t", "wav", str(tmp), "pitch", str(int(cents))]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise RuntimeError("sox not found: apt-get install sox") from e
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"sox pitch {cents} failed on {path}: {result.stderr[-500:]}")
    new_rate, new_frames = _move_into_place(tmp, path, "sox")
    if new_rate != rate or abs(new_frames - frames) > rate // 100:
        raise RuntimeError(
            f"sox pitch changed {path}: {rate} Hz x {frames} -> {new_rate} Hz x {new_frames}"
        )


def synthesize_flite(text: str, voice: str, path: Path, *, stretch: float = 1.0) -> Phones:
    """Speak ``text`` with flite voice ``voice`` into ``path``; return its segment timings."""
    tmp = path.with_name(f".{path.stem}.flite.wav.tmp")
    cmd = [
        "flite",
        "-voice",
        voice,
        "--setf",
        f"duration_stretch={stretch}",
        "-psdur",
        "-t",
        text,
        "-o",
        str(tmp),
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise RuntimeError("flite not found: apt-get install flite") from e
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(
            f"flite failed ({result.returncode}) for {text!r}: {result.stderr[-500:]}"
        )
    pairs = [
        (m.group(1), float(m.group(2))) for m in re.finditer(r"(\S+):([0-9.]+)", result.stdout)
    ]
    _move_into_place(tmp, path, "flite")
    return _ends_to_phones(pairs)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesize_festival(
    items: list[tuple[str, str, Path]], voice: str, *, stretch: float = 1.0
) -> dict[str, Phones]:
    """Speak ``[(utt_id, text, path), ...]`` with festival voice ``voice`` in one process.

    Returns ``{utt_id: phones}``. Raises if festival fails or leaves any wav unwritten.
    """
    if not items:
        return {}
    out_dir = items[0][2].parent
    lines = [
        f"(voice_{voice})",
        f"(Parameter.set 'Duration_Stretch {stretch})",
        "(define (valle_say id text wav)"
        # Utterance quotes its arguments, so build the call to pass the value of text.
        " (let ((utt (utt.synth (eval (list 'Utterance 'Text text)))))"
        " (utt.save.wave utt wav 'riff)"
        ' (format t "@@ %s\\n" id)'
        ' (mapcar (lambda (s) (format t "%s %f\\n" (item.name s) (item.feat s "end")))'
        " (utt.relation.items utt 'Segment))"
        " t))",
    ]
    tmps = {}
    for utt_id, text, path in items:
        tmp = path.with_name(f".{path.stem}.festival.wav.tmp")
        tmps[utt_id] = (tmp, path)
        lines.append(
            f"(valle_say {_scheme_string(utt_id)} {_scheme_string(text)} {_scheme_string(str(tmp))})"
        )
    fd, script = tempfile.mkstemp(dir=out_dir, prefix=".batch.", suffix=".scm")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    try:
        result = subprocess.run(
            ["festival", "-b", script], capture_output=True, text=True, check=False
        )
    except FileNotFoundError as e:
        raise RuntimeError("festival not found: apt-get install festival") from e
    finally:
        Path(script).unlink(missing_ok=True)
    if "unbound variable : voice_" in result.stderr + result.stdout:
        package = _FESTIVAL_VOICE_PACKAGES.get(voice, "the festvox package of that voice")
        raise RuntimeError(f"festival has no voice {voice!r}: apt-get install {package}")
    timings: dict[str, list[tuple[str, float]]] = {}
    current: list[tuple[str, float]] | None = None
    for line in result.stdout.splitlines():
        if line.startswith("@@ "):
            current = timings.setdefault(line[3:].strip(), [])
        elif current is not None:
            parts = line.split()
            if len(parts) == 2:
                try:
                    current.append((parts[0], float(parts[1])))
                except ValueError:
                    pass
    phones: dict[str, Phones] = {}
    for utt_id, (tmp, path) in tmps.items():
        if utt_id not in timings or not tmp.is_file():
            for t, _ in tmps.values():
                t.unlink(missing_ok=True)
            raise RuntimeError(
                f"festival ({voice}) did not synthesise {utt_id}: {(result.stderr or result.stdout)[-500:]}"
            )
        _move_into_place(tmp, path, "festival")
        phones[utt_id] = _ends_to_phones(timings[utt_id])
    return phones


def synthesize_espeak(text: str, voice: str, path: Path, *, rate: int, pitch: int) -> Phones:
    """Speak ``text`` with espeak-ng voice ``voice`` (``name+variant``) into ``path``."""
    synth = espeak_synth()
    pcm, phones = synth.synthesize(text, voice, rate=rate, pitch=pitch)
    if not pcm:
        raise RuntimeError(f"espeak-ng ({voice}) produced no audio for {text!r}")
    write_wav_atomic(path, pcm, synth.sample_rate)
    return phones
