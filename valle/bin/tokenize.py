"""valle-tokenize: codec codes and phoneme tokens for a cut manifest (recipe stages 2 and 3).

python -m valle.bin.tokenize codes --cuts data/manifests/mini_cuts_all.jsonl.gz
    --codec mel_rvq --codec-path data/codec/mel_rvq --output-dir data/tokenized --prefix mini
    (or --codec-spec conf/codec_mel_rvq_merged.yaml: a registered name and its options)
python -m valle.bin.tokenize text --cuts data/tokenized/mini_cuts_codes.jsonl.gz
    --corpus mini --output data/tokenized/mini_cuts_tokenized.jsonl.gz --tokens data/tokens.txt
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from valle.data.codec_info import CODEC_NAMES

log = logging.getLogger("valle.bin.tokenize")


def _codec_choice(args: argparse.Namespace) -> tuple[str, dict]:
    """(registered name, load options) from --codec/--bandwidth or from --codec-spec."""
    if args.codec_spec is not None:
        if args.codec is not None or args.bandwidth is not None:
            raise ValueError("give --codec-spec or --codec/--bandwidth, not both")
        from valle.codec.registry import read_codec_choice

        return read_codec_choice(args.codec_spec)
    if args.codec is None:
        raise ValueError("give --codec (a registered codec name) or --codec-spec (a YAML file)")
    return args.codec, ({} if args.bandwidth is None else {"bandwidth": args.bandwidth})


def _codes(args: argparse.Namespace) -> None:
    from valle.data.codec_info import CodecInfo, load_codec
    from valle.data.manifests import load_cuts
    from valle.data.tokenize import encode_cuts

    cuts = load_cuts(args.cuts, "input cuts")
    name, options = _codec_choice(args)
    codec = load_codec(name, args.codec_path, device=args.device, **options)
    info = CodecInfo.from_codec(codec, name=name, path=args.codec_path, **options)
    _, stats = encode_cuts(
        cuts,
        codec,
        args.output_dir,
        prefix=args.prefix,
        codec_info=info,
        chunk_size=args.chunk_size,
        batch_size=args.batch_size,
        max_batch_seconds=args.max_batch_seconds,
        storage_type=args.storage,
    )
    print(
        f"codes: {stats.num_cuts} cuts; this run encoded {stats.audio_seconds:.1f} s of audio "
        f"in {stats.wall_seconds:.1f} s ({stats.speed:.1f} s/s, {stats.chunks_computed} of "
        f"{stats.chunks_total} chunks; codec {info.name}: {info.num_codebooks} x "
        f"{info.codebook_size} at {info.frame_rate:g} Hz)"
    )


def _text(args: argparse.Namespace) -> None:
    from valle.data.manifests import load_cuts, save_cuts_atomic
    from valle.data.splits import split_cuts
    from valle.data.tokenize import add_phonemes, build_symbol_table

    if (args.corpus is None) != (args.tokens is None):
        raise ValueError("give --corpus and --tokens together (to build tokens.txt), or neither")
    cuts = load_cuts(args.cuts, "input cuts")
    cuts = add_phonemes(cuts, default_language=args.language)
    msg = f"text: {len(cuts)} cuts phonemized -> {args.output}"
    if args.corpus is not None:
        train = split_cuts(cuts, args.corpus)["train"]
        if len(train) == 0:
            raise ValueError(f"the {args.corpus} train split is empty: cannot build {args.tokens}")
        symbols = build_symbol_table(train)
        symbols.to_file(args.tokens)
        msg += f"; {len(symbols)} symbols (train split) -> {args.tokens}"
    save_cuts_atomic(cuts, args.output)
    print(msg)


def _bench(args: argparse.Namespace) -> None:
    """Tokenization speed on synthetic speech-like wav files (reading + resampling included)."""
    import tempfile

    import soundfile as sf
    from lhotse import CutSet, Recording

    from valle.codec.base import Codec
    from valle.data.codec_info import CodecInfo, load_codec
    from valle.data.tokenize import encode_cuts
    from valle.testing.codec import random_full_encodec_codec, synthetic_waves

    codec: Codec
    if args.codec == "random-encodec":
        rnd = random_full_encodec_codec(bandwidth=args.bandwidth or 6.0)
        codec = type(rnd)(rnd.model.to(args.device), bandwidth=rnd.bandwidth)
        name, path = "encodec", None
    else:
        options = {} if args.bandwidth is None else {"bandwidth": args.bandwidth}
        codec = load_codec(args.codec, args.codec_path, device=args.device, **options)
        name, path = args.codec, args.codec_path
    info = CodecInfo.from_codec(codec, name=name, path=path)
    lengths = [int(args.utterance_seconds * args.file_rate)] * args.num_utterances
    with tempfile.TemporaryDirectory() as tmp:
        cuts = []
        for i, wave in enumerate(synthetic_waves(lengths, args.file_rate, seed=0)):
            f = Path(tmp) / f"utt{i:04d}.wav"
            sf.write(str(f), wave.numpy(), args.file_rate)
            cuts.append(Recording.from_file(f).to_cut())
        _, stats = encode_cuts(
            CutSet.from_cuts(cuts),
            codec,
            Path(tmp) / "out",
            prefix="bench",
            codec_info=info,
            chunk_size=args.num_utterances,
            batch_size=args.batch_size,
            max_batch_seconds=args.max_batch_seconds,
        )
    print("| codec | Q x K | frame rate | device | audio (s) | wall (s) | audio s / s |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.codec} | {info.num_codebooks} x {info.codebook_size} | {info.frame_rate:g} Hz "
        f"| {args.device} | {stats.audio_seconds:.1f} | {stats.wall_seconds:.1f} "
        f"| {stats.speed:.1f} |"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="valle-tokenize",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("codes", help="encode every cut with a codec (resumable, chunked)")
    c.add_argument("--cuts", type=Path, required=True, help="input cut manifest")
    c.add_argument("--codec", choices=CODEC_NAMES, default=None)
    c.add_argument(
        "--codec-spec",
        type=Path,
        default=None,
        help="instead of --codec/--bandwidth: YAML {name, options}, e.g. the merged codec of "
        "VALL-E R (egs/mini/conf/codec_mel_rvq_merged.yaml)",
    )
    c.add_argument("--codec-path", required=True, help="local codec dir or hub name")
    c.add_argument("--bandwidth", type=float, default=None, help="EnCodec bandwidth, kbps")
    c.add_argument("--output-dir", type=Path, required=True)
    c.add_argument("--prefix", required=True, help="file-name prefix, e.g. the corpus name")
    c.add_argument("--chunk-size", type=int, default=500, help="cuts per resumable chunk")
    c.add_argument("--batch-size", type=int, default=16, help="cuts per codec call")
    c.add_argument("--max-batch-seconds", type=float, default=160.0, help="audio s per codec call")
    c.add_argument("--storage", default="numpy_files", choices=["numpy_files", "numpy_hdf5"])
    c.add_argument("--device", default="cpu", help="cpu or cuda")
    c.set_defaults(func=_codes)

    t = sub.add_parser("text", help="phonemize supervisions; build tokens.txt over train")
    t.add_argument("--cuts", type=Path, required=True, help="input cut manifest")
    t.add_argument("--corpus", default=None, help="corpus whose split rules pick the train set")
    t.add_argument("--output", type=Path, required=True, help="output cut manifest")
    t.add_argument("--tokens", type=Path, default=None, help="symbol table to build and write")
    t.add_argument("--language", default=None, help="language code for unlabelled supervisions")
    t.set_defaults(func=_text)

    b = sub.add_parser("bench", help="tokenization speed on synthetic wav files")
    b.add_argument(
        "--codec",
        default="random-encodec",
        choices=[*CODEC_NAMES, "random-encodec"],
        help="random-encodec: full-size 24 kHz EnCodec with random weights",
    )
    b.add_argument("--codec-path", default=None)
    b.add_argument("--bandwidth", type=float, default=None, help="EnCodec bandwidth, kbps")
    b.add_argument("--num-utterances", type=int, default=16)
    b.add_argument("--utterance-seconds", type=float, default=6.0)
    b.add_argument("--file-rate", type=int, default=24000, help="sample rate of the wav files")
    b.add_argument("--batch-size", type=int, default=16)
    b.add_argument("--max-batch-seconds", type=float, default=160.0)
    b.add_argument("--device", default="cpu")
    b.set_defaults(func=_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"valle-tokenize {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
