#!/usr/bin/env python3
"""Intelligibility of each mini-corpus voice: ASR error rate on a few utterances per speaker.

Usage: python local/asr_check.py --corpus-dir data/corpus/mini [--per-speaker 5]
           [--model /work/shared/models/faster-whisper-base]
English: word error rate; Mandarin: character error rate; Japanese is skipped (the references
are kana, Whisper writes kanji, so a character rate would measure the script, not the voice).
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

import jiwer
from faster_whisper import WhisperModel

from valle.data.mini.corpus import load_metadata

_ZH_PROMPT = "以下是普通话的句子，使用简体中文。"


def _norm_en(text: str) -> str:
    text = re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " "))
    return re.sub(r"\s+", " ", text).strip()


def _norm_zh(text: str) -> str:
    return "".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus-dir", type=Path, required=True)
    parser.add_argument("--per-speaker", type=int, default=5)
    parser.add_argument("--model", default="/work/shared/models/faster-whisper-base")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speakers", nargs="*", help="only these speakers (default: all)")
    args = parser.parse_args()

    model = WhisperModel(
        args.model, device="cpu", compute_type="int8", local_files_only=True, cpu_threads=2
    )
    records = load_metadata(args.corpus_dir)
    speakers = sorted({r["speaker"] for r in records if r["language"] != "ja"})
    if args.speakers:
        speakers = [s for s in speakers if s in args.speakers]
    rng = random.Random(args.seed)
    print(f"{'speaker':26s} {'lang':4s} {'n':>3s} {'error':>7s}")
    for speaker in speakers:
        mine = [r for r in records if r["speaker"] == speaker]
        picked = rng.sample(mine, min(args.per_speaker, len(mine)))
        language = picked[0]["language"]
        refs, hyps = [], []
        for r in picked:
            segments, _ = model.transcribe(
                str(args.corpus_dir / r["wav"]),
                language=language,
                beam_size=1,
                # Whisper often writes Mandarin in traditional characters; a simplified prompt
                # steers it to the script of the references.
                initial_prompt=_ZH_PROMPT if language == "zh" else None,
            )
            hyp = " ".join(s.text for s in segments)
            norm = _norm_en if language == "en" else _norm_zh
            refs.append(norm(r["text"]))
            hyps.append(norm(hyp))
        if language == "en":
            error, kind = jiwer.wer(refs, hyps), "WER"
        else:
            error, kind = jiwer.cer(refs, hyps), "CER"
        print(f"{speaker:26s} {language:4s} {len(picked):3d} {100 * error:6.1f}% {kind}")


if __name__ == "__main__":
    main()
