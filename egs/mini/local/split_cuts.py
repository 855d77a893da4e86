#!/usr/bin/env python3
"""Stage 4 of egs/mini: zero-shot train/dev/test split of a cut manifest.

Usage: python local/split_cuts.py --cuts data/tokenized/mini_cuts_all.jsonl.gz \
           --output-dir data/tokenized [--dev-per-speaker 2] [--seed 0]
Writes mini_cuts_{train,dev,test}.jsonl.gz; test = every cut of MINI_TEST_SPEAKERS.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lhotse import CutSet

from valle.data.manifests import save_cuts_atomic
from valle.data.mini_corpus import MINI_TEST_SPEAKERS, split_mini


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cuts", type=Path, required=True, help="all cuts (jsonl.gz)")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--dev-per-speaker", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.cuts.is_file():
        raise SystemExit(f"{args.cuts} not found: run the tokenization stage first")
    splits = split_mini(
        CutSet.from_file(args.cuts), dev_per_speaker=args.dev_per_speaker, seed=args.seed
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, cuts in splits.items():
        path = args.output_dir / f"mini_cuts_{name}.jsonl.gz"
        save_cuts_atomic(cuts, path)
        print(f"{name}: {len(cuts)} cuts -> {path}")
    print(f"test speakers: {', '.join(MINI_TEST_SPEAKERS)}")


if __name__ == "__main__":
    main()
