"""valle-prosody: RALL-E's phoneme-level prosody tokens stored on the cuts (recipe stage 4, --prosody true).

Pitch token per phoneme (mean F0 over its voiced frames, log-F0 buckets over a fixed
50-600 Hz range, 0 = unvoiced) and duration token per phoneme (frames clipped at M_d), as
``cut.custom["pitch_tokens"]`` / ``["duration_tokens"]`` (see valle.data.prosody). The cuts
need codes and ``durations`` (python -m valle.bin.align durations). Resumable: finished
chunks under ``<out>.prosody-chunks/`` are reused by a rerun unless their cuts changed (new
durations, another manifest entry, or a replaced audio file: that chunk is recomputed).
The recipes run it as ``prepare.sh --stage 4 --align true --prosody true``.

python -m valle.bin.prosody --cuts data/align/mini_cuts_train.jsonl.gz
    --out data/prosody/mini_cuts_train.jsonl.gz [--pitch-buckets 256] [--max-duration 32]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("valle.bin.prosody")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="valle-prosody",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cuts", type=Path, required=True, help="cuts with codes and durations")
    p.add_argument("--out", type=Path, required=True, help="output cut manifest (.jsonl.gz)")
    p.add_argument("--pitch-buckets", type=int, default=256, help="M_p voiced log-F0 buckets")
    p.add_argument("--f-min", type=float, default=50.0, help="lowest F0 of the buckets (Hz)")
    p.add_argument("--f-max", type=float, default=600.0, help="highest F0 of the buckets (Hz)")
    p.add_argument("--max-duration", type=int, default=32, help="M_d: clip durations (frames)")
    p.add_argument("--chunk-size", type=int, default=200, help="cuts per resumable chunk")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from valle.data.manifests import load_cuts
    from valle.data.prosody import PitchQuantizer, ProsodyExtractor, annotate_cuts

    try:
        cuts = load_cuts(args.cuts, "cuts with durations")
        q = PitchQuantizer(args.pitch_buckets, args.f_min, args.f_max)
        extractor = ProsodyExtractor(q, args.max_duration)
        out = annotate_cuts(
            cuts, args.out, extractor, chunk_size=args.chunk_size, progress=not args.no_progress
        )
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"valle-prosody: error: {e}", file=sys.stderr)
        return 1
    print(f"prosody: {len(out)} cuts -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
