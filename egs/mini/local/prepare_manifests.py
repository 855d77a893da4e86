#!/usr/bin/env python3
"""Stage 1 of egs/mini: lhotse manifests of the synthesised corpus.

Usage: python local/prepare_manifests.py --corpus-dir data/mini_corpus --output-dir data/manifests
Writes mini_recordings_all.jsonl.gz and mini_supervisions_all.jsonl.gz (with phone alignments).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from valle.data.mini_corpus import prepare_mini_manifests


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--corpus-dir", type=Path, required=True, help="made by local/make_corpus.py"
    )
    parser.add_argument("--output-dir", type=Path, required=True, help="manifest folder")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    manifests = prepare_mini_manifests(args.corpus_dir, args.output_dir)
    print(f"wrote {len(manifests['recordings'])} recordings to {args.output_dir}")


if __name__ == "__main__":
    main()
