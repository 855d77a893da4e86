"""valle-align: a built-in phoneme aligner (CTC acoustic model + monotonic Viterbi).

Durations in codec frames for every phoneme token, for VALL-E R and RALL-E (see valle.align).

python -m valle.bin.align train --cuts data/tokenized/mini_cuts_train.jsonl.gz
    --tokens data/tokens.txt --out-dir data/align [--steps 3000] [--max-minutes 8]
python -m valle.bin.align durations --model data/align/aligner.pt
    --cuts data/tokenized/mini_cuts_train.jsonl.gz --out data/align/mini_cuts_train.jsonl.gz
    [--set separator_cost=0 ...]
python -m valle.bin.align evaluate --cuts data/align/mini_cuts_train.jsonl.gz
    [--plot data/align/alignment.png] [--output data/align/boundaries.md]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("valle.bin.align")


def _train(args: argparse.Namespace) -> None:
    from valle.align.model import ModelConfig
    from valle.align.training import TrainConfig, train_aligner
    from valle.data.manifests import load_cuts
    from valle.text import SymbolTable

    cuts = load_cuts(args.cuts, "train cuts")
    symbols = SymbolTable.from_file(args.tokens)
    cfg = TrainConfig(
        steps=args.steps,
        max_frames=args.max_frames,
        lr=args.lr,
        warmup=min(args.warmup, max(1, args.steps // 5)),
        max_minutes=args.max_minutes,
        seed=args.seed,
    )
    path = train_aligner(
        cuts, symbols.symbols, args.out_dir, cfg, ModelConfig(channels=args.channels)
    )
    from valle.align.model import load_aligner

    info = load_aligner(path)[3].get("train", {})
    print(f"aligner: {json.dumps(info)} -> {path}")


def _durations(args: argparse.Namespace) -> None:
    from valle.align.durations import Aligner, align_cuts
    from valle.data.manifests import load_cuts

    cuts = load_cuts(args.cuts, "cuts to align")
    aligner = Aligner(args.model, settings=args.set)
    out = align_cuts(cuts, aligner, args.out, chunk_size=args.chunk_size)
    cfg = aligner.config
    print(
        f"durations: {len(out)} cuts aligned -> {args.out} (phone_weight={cfg.phone_weight}, "
        f"silence_weight={cfg.silence_weight}, separator_cost={cfg.separator_cost})"
    )


def _evaluate(args: argparse.Namespace) -> None:
    from lhotse import CutSet

    from valle.align.evaluate import evaluate_cuts, format_table
    from valle.data.manifests import load_cuts

    cuts = CutSet.from_cuts(c for path in args.cuts for c in load_cuts(path, "aligned cuts"))
    rows = evaluate_cuts(cuts, min_match=args.min_match).rows()
    table = format_table(rows)
    print(table)
    if args.output is not None:
        from valle.io.atomic import atomic_write_text

        atomic_write_text(args.output, table + "\n")
    if args.plot is not None:
        _plot(cuts, args)


def _plot(cuts, args: argparse.Namespace) -> None:
    from valle.align.durations import cut_durations
    from valle.align.evaluate import plot_alignment
    from valle.align.features import AlignFeatures, FeatureConfig
    from valle.data.prompt import frame_rate_of

    by_speaker: dict[str, object] = {}
    for c in cuts:
        by_speaker.setdefault(c.supervisions[0].speaker or c.id, c)
    chosen = list(by_speaker.values())[: args.num_plots]
    rate = frame_rate_of(chosen[0])
    feats = AlignFeatures(FeatureConfig(frame_rate=rate))
    mats, durs = [], []
    for c in chosen:
        d = cut_durations(c)
        mats.append(feats(c, int(sum(d))).numpy())
        durs.append(d)
    path = plot_alignment(chosen, mats, durs, args.plot, rate, seconds=args.plot_seconds)
    print(f"plot: {len(chosen)} utterances -> {path}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="valle-align",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the CTC acoustic model on train cuts")
    t.add_argument(
        "--cuts", type=Path, required=True, help="tokenized train cuts (codes, phonemes)"
    )
    t.add_argument("--tokens", type=Path, required=True, help="symbol table tokens.txt")
    t.add_argument("--out-dir", type=Path, required=True, help="writes aligner.pt here")
    t.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    t.add_argument(
        "--max-minutes", type=float, default=None, help="wall-time budget (features included)"
    )
    t.add_argument("--max-frames", type=int, default=2000, help="feature frames per batch")
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    t.add_argument("--warmup", type=int, default=30, help="warm-up steps")
    t.add_argument("--channels", type=int, default=64, help="model width")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_train)

    d = sub.add_parser("durations", help="align cuts: custom['durations'] per phoneme token")
    d.add_argument("--model", type=Path, required=True, help="aligner.pt")
    d.add_argument("--cuts", type=Path, required=True, help="tokenized cuts")
    d.add_argument("--out", type=Path, required=True, help="output cut manifest (.jsonl.gz)")
    d.add_argument("--chunk-size", type=int, default=200, help="cuts per resumable chunk")
    d.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an alignment setting of the checkpoint (repeatable): score, prior_scale, "
        "align_prior, align_prior_width, phone_weight, silence_weight, separator_cost; "
        "'--set phone_weight=0 --set silence_weight=0 --set separator_cost=0' gives the "
        "scores of aligners before valle.align.scoring",
    )
    d.set_defaults(func=_durations)

    e = sub.add_parser("evaluate", help="word-boundary errors against engine timings (mini)")
    e.add_argument("--cuts", type=Path, nargs="+", required=True, help="cuts with durations")
    e.add_argument("--output", type=Path, default=None, help="also write the table here")
    e.add_argument("--plot", type=Path, default=None, help="PNG of a few alignments")
    e.add_argument("--num-plots", type=int, default=4, help="utterances in the plot")
    e.add_argument("--plot-seconds", type=float, default=4.0, help="seconds shown per utterance")
    e.add_argument("--min-match", type=float, default=0.6, help="least phone-class match share")
    e.set_defaults(func=_evaluate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"valle-align {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
