"""valle-prepare: corpus download, manifests, codec fitting and splits (recipe stages 0, 1, 2, 4).

Each subcommand is a thin call into ``valle.data``; the recipes (egs/*/prepare.sh) chain them.

    python -m valle.bin.prepare mini-corpus --corpus-dir data/corpus/mini --scale 0.01
    python -m valle.bin.prepare mini-manifests --corpus-dir data/corpus/mini --output-dir data/manifests
    python -m valle.bin.prepare libritts-download --target-dir data/download --parts dev-clean
    python -m valle.bin.prepare libritts-manifests --corpus-dir data/download/LibriTTS --output-dir data/manifests
    python -m valle.bin.prepare fit-mel-rvq --cuts data/manifests/mini_cuts_all.jsonl.gz
        --corpus mini --config conf/mel_rvq.yaml --output-dir data/codec/mel_rvq
    python -m valle.bin.prepare split --cuts data/tokenized/mini_cuts_tokenized.jsonl.gz
        --corpus mini --tokens data/tokens.txt --output-dir data/tokenized --prefix mini
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("valle.bin.prepare")


def _mini_corpus(args: argparse.Namespace) -> None:
    from valle.data.mini_corpus import make_mini_corpus

    make_mini_corpus(args.corpus_dir, num_jobs=args.num_jobs, seed=args.seed, scale=args.scale)
    print(f"mini corpus ready in {args.corpus_dir}")


def _mini_manifests(args: argparse.Namespace) -> None:
    from valle.data.manifests import cuts_from_manifests, save_cuts_atomic
    from valle.data.mini_corpus import prepare_mini_manifests

    m = prepare_mini_manifests(args.corpus_dir, args.output_dir)
    cuts = cuts_from_manifests(m["recordings"], m["supervisions"])
    out = save_cuts_atomic(cuts, Path(args.output_dir) / "mini_cuts_all.jsonl.gz")
    print(f"mini manifests: {len(cuts)} cuts -> {out}")


def _libritts_download(args: argparse.Namespace) -> None:
    from valle.data.libritts import download_libritts_parts

    path = download_libritts_parts(args.target_dir, args.parts)
    print(f"LibriTTS parts {args.parts} in {path}")


def _libritts_manifests(args: argparse.Namespace) -> None:
    from valle.data.libritts import prepare_libritts_cuts

    cuts = prepare_libritts_cuts(
        args.corpus_dir,
        args.output_dir,
        parts=args.parts or None,
        num_jobs=args.num_jobs,
        skip_bad_audio=args.skip_bad_audio,
    )
    print(f"libritts manifests: {len(cuts)} cuts -> {args.output_dir}/libritts_cuts_all.jsonl.gz")


def _librispeech_download(args: argparse.Namespace) -> None:
    from valle.data.libritts import download_librispeech_test_clean

    print(f"LibriSpeech test-clean in {download_librispeech_test_clean(args.target_dir)}")


def _librispeech_manifests(args: argparse.Namespace) -> None:
    from valle.data.libritts import prepare_librispeech_test_clean_cuts

    cuts = prepare_librispeech_test_clean_cuts(args.corpus_dir, args.output_dir, args.num_jobs)
    print(f"librispeech test-clean: {len(cuts)} cuts -> {args.output_dir}")


def _fit_mel_rvq(args: argparse.Namespace) -> None:
    from valle.data.codec_fit import fit_mel_rvq_on_train

    codec = fit_mel_rvq_on_train(args.cuts, args.corpus, args.output_dir, config_path=args.config)
    print(
        f"mel_rvq codec ({codec.num_codebooks} x {codec.codebook_size} at {codec.frame_rate:g} Hz) "
        f"fitted -> {args.output_dir}; fit info: {codec.fit_info}"
    )


def _split(args: argparse.Namespace) -> None:
    from valle.data.manifests import load_cuts
    from valle.data.splits import format_summary, split_cuts, summarize, write_splits
    from valle.data.tokenize import drop_unknown_symbols
    from valle.io.atomic import atomic_write_text
    from valle.text import SymbolTable

    cuts = load_cuts(args.cuts, "tokenized cuts")
    splits = split_cuts(cuts, args.corpus)
    unknown = [s for s in args.splits if s not in splits]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; choose from {list(splits)}")
    splits = {k: v for k, v in splits.items() if k in args.splits}
    dropped = ""
    if args.tokens is not None:
        symbols = SymbolTable.from_file(args.tokens)
        before = {k: len(v) for k, v in splits.items()}
        splits = {
            k: drop_unknown_symbols(v, symbols, f"{args.prefix} {k}") for k, v in splits.items()
        }
        dropped = ", ".join(f"{k} {before[k] - len(v)}" for k, v in splits.items())
        dropped = f"cuts dropped for phonemes outside {args.tokens.name}: {dropped}\n"
    paths = write_splits(splits, args.output_dir, args.prefix)
    table = format_summary(summarize(splits)) + dropped
    atomic_write_text(Path(args.output_dir) / f"{args.prefix}_summary.txt", table)
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(table, end="")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="valle-prepare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("mini-corpus", help="stage 0: synthesise the offline mini corpus")
    s.add_argument("--corpus-dir", type=Path, required=True)
    s.add_argument("--num-jobs", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--scale", type=float, default=1.0, help="fraction of the full corpus (1.0: every voice reads its full count)")
    s.set_defaults(func=_mini_corpus)

    s = sub.add_parser("mini-manifests", help="stage 1: lhotse manifests + cuts of the mini corpus")
    s.add_argument("--corpus-dir", type=Path, required=True)
    s.add_argument("--output-dir", type=Path, required=True)
    s.set_defaults(func=_mini_manifests)

    s = sub.add_parser("libritts-download", help="stage 0: download LibriTTS parts (lhotse)")
    s.add_argument("--target-dir", type=Path, required=True)
    s.add_argument("--parts", nargs="+", required=True)
    s.set_defaults(func=_libritts_download)

    s = sub.add_parser("libritts-manifests", help="stage 1: LibriTTS manifests + cuts (lhotse)")
    s.add_argument("--corpus-dir", type=Path, required=True, help="the LibriTTS directory")
    s.add_argument("--output-dir", type=Path, required=True)
    s.add_argument("--parts", nargs="*", default=None, help="default: every part present")
    s.add_argument("--num-jobs", type=int, default=1)
    s.add_argument(
        "--skip-bad-audio",
        action="store_true",
        help="leave truncated wav files out (with a warning) instead of failing",
    )
    s.set_defaults(func=_libritts_manifests)

    s = sub.add_parser("librispeech-download", help="download LibriSpeech test-clean (lhotse)")
    s.add_argument("--target-dir", type=Path, required=True)
    s.set_defaults(func=_librispeech_download)

    s = sub.add_parser("librispeech-manifests", help="LibriSpeech test-clean cuts (lhotse)")
    s.add_argument("--corpus-dir", type=Path, required=True)
    s.add_argument("--output-dir", type=Path, required=True)
    s.add_argument("--num-jobs", type=int, default=1)
    s.set_defaults(func=_librispeech_manifests)

    s = sub.add_parser("fit-mel-rvq", help="stage 2: fit the offline MelRVQ codec on train audio")
    s.add_argument("--cuts", type=Path, required=True, help="all cuts (the train split is used)")
    s.add_argument("--corpus", required=True, help="corpus whose split rules pick the train set")
    s.add_argument("--config", type=Path, default=None, help="YAML of MelRVQConfig fields")
    s.add_argument("--output-dir", type=Path, required=True)
    s.set_defaults(func=_fit_mel_rvq)

    s = sub.add_parser("split", help="stage 4: train/dev/test cut manifests + summary table")
    s.add_argument("--cuts", type=Path, required=True, help="tokenized cuts")
    s.add_argument("--corpus", required=True)
    s.add_argument("--tokens", type=Path, default=None, help="drop cuts with unknown phonemes")
    s.add_argument("--output-dir", type=Path, required=True)
    s.add_argument("--prefix", required=True)
    s.add_argument("--splits", nargs="+", default=["train", "dev", "test"], help="splits to write")
    s.set_defaults(func=_split)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"valle-prepare {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
