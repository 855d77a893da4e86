#!/usr/bin/env python3
"""Stage 0 of egs/mini: synthesise the offline corpus and print what was made.

Usage: python local/make_corpus.py --corpus-dir data/mini_corpus [--num-jobs 2] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from valle.data.mini.corpus import load_metadata, make_mini_corpus, summarize
from valle.data.mini.voices import MINI_TEST_SPEAKERS, voice_by_speaker


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus-dir", type=Path, required=True, help="output folder")
    parser.add_argument("--num-jobs", type=int, default=2, help="engine processes")
    parser.add_argument("--seed", type=int, default=0, help="sentence assignment seed")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full corpus")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    start = time.perf_counter()
    make_mini_corpus(args.corpus_dir, num_jobs=args.num_jobs, seed=args.seed, scale=args.scale)
    wall = time.perf_counter() - start
    stats = summarize(load_metadata(args.corpus_dir))
    print(f"{'speaker':26s} {'engine':9s} {'lang':4s} {'utts':>5s} {'min':>6s}  split")
    for speaker, minutes in stats["minutes_per_speaker"].items():
        voice = voice_by_speaker(speaker)
        split = "test" if speaker in MINI_TEST_SPEAKERS else "train"
        n = stats["utterances_per_speaker"][speaker]
        print(f"{speaker:26s} {voice.engine:9s} {voice.language:4s} {n:5d} {minutes:6.2f}  {split}")
    languages = ", ".join(f"{k}: {v:.1f} min" for k, v in stats["minutes_per_language"].items())
    print(
        f"total: {stats['utterances']} utterances, {stats['speakers']} speakers, "
        f"{stats['hours']:.3f} h ({languages}); wall time {wall:.1f} s with {args.num_jobs} jobs"
    )


if __name__ == "__main__":
    main()
