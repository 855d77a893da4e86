"""valle-hard: the hard-sentence robustness test (RALL-E Sec 4) for one checkpoint.

Synthesizes the shipped hard sentences (valle/eval/resources/hard_sentences.txt: repeated
words, tongue twisters, numbers and dates, very short and very long sentences) in one
prompt's voice, transcribes them with an ASR and reports the WER and the share of bad cases
(WER > 50%, a skipped or a repeated word in the alignment, the length cap hit), overall and
per group (see valle.eval.hard).

python -m valle.bin.hard --checkpoint exp/ralle/model.pt --prompt-wav spk.wav
    --prompt-text "what the prompt says" --out-dir exp/ralle/hard [--asr faster-whisper]
    [--asr-path MODEL_DIR] [--system ralle] [--sentences my_list.txt] [--seed 0]

The voice can instead come from a test list of `valle-bench protocol` (as the recipes' decode
stage writes them): the prompt of its first item, or of --prompt-item, cut from --cuts, is
written to <out-dir>/prompt.wav with its transcript in prompt.txt:

python -m valle.bin.hard --checkpoint exp/ralle/model.pt --prompt-list
    exp/ralle/decode/lists/cross_en.jsonl --cuts data/tokenized/mini_cuts_test.jsonl.gz
    --out-dir exp/ralle/hard

Several systems side by side (from their hard_summary.json files):

python -m valle.bin.hard --compare exp/valle/hard exp/ralle/hard [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("valle.bin.hard")


def build_parser() -> argparse.ArgumentParser:
    from valle.eval.asr import ASR_BACKENDS
    from valle.inference.arguments import add_model_overrides
    from valle.inference.quantize import QUANTIZE_MODES

    p = argparse.ArgumentParser(
        prog="valle-hard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", help="<exp>/model.pt or a Lightning .ckpt")
    p.add_argument("--prompt-wav", type=Path, help="the voice (a wav file)")
    p.add_argument("--prompt-text", help="transcript of the prompt")
    p.add_argument("--prompt-list", type=Path, help="instead: a protocol list (.jsonl) whose "
                   "item's prompt is the voice")  # fmt: skip
    p.add_argument("--prompt-item", default=None, help="that item's id (default: the first)")
    p.add_argument("--cuts", type=Path, help="the cuts the --prompt-list items come from")
    p.add_argument("--out-dir", type=Path, help="writes wavs, rows and summary")
    p.add_argument("--compare", type=Path, nargs="+", default=None, metavar="DIR",
                   help="instead: print the tables of these --out-dirs side by side")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="with --compare: also write it here")
    p.add_argument("--tokens", default=None, help="tokens.txt (when the checkpoint has none)")
    p.add_argument("--codec-dir", default=None, help="codec directory (when not in the checkpoint)")
    p.add_argument(
        "--sentences", type=Path, default=None, help="another '<id>\\t<group>\\t<text>' list"
    )
    p.add_argument("--asr", default="faster-whisper", choices=sorted(ASR_BACKENDS))
    p.add_argument("--asr-path", default=None, help="model directory or hub name of the ASR")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-len-ratio", type=float, default=None, help="AR bound (frames per token)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--system", default=None, help="name in the table (default: the checkpoint)")
    add_model_overrides(p, "ar.head.advance=sample", "as the decode stage's")
    p.add_argument("--quantize", choices=QUANTIZE_MODES, default="none",
                   help="weight precision at inference (valle.inference.quantize)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    return p


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One of the three ways to call it, with what that way needs (argparse errors, exit 2)."""
    if args.compare is not None:
        return
    if args.checkpoint is None or args.out_dir is None:
        p.error("--checkpoint and --out-dir are required (or --compare DIR ...)")
    by_wav = args.prompt_wav is not None or args.prompt_text is not None
    by_list = args.prompt_list is not None
    if by_wav == by_list:
        p.error(
            "give the voice either as --prompt-wav + --prompt-text or as --prompt-list + --cuts"
        )
    if by_wav and (args.prompt_wav is None or args.prompt_text is None):
        p.error("--prompt-wav needs --prompt-text (what the prompt says), and the other way round")
    if by_list and args.cuts is None:
        p.error("--prompt-list needs --cuts (the cut manifest its items were made from)")


def prompt_from_list(
    list_path: Path, cuts_path: Path, item_id: str | None, out_dir: Path
) -> tuple[Path, str]:
    """Write the prompt of a protocol item to ``out_dir/prompt.wav`` (+ ``prompt.txt``);
    returns ``(wav path, transcript)``. The first item unless ``item_id`` names one."""
    import soundfile as sf
    from lhotse import CutSet

    from valle.eval.protocols import load_prompt_audio, read_protocol
    from valle.io.atomic import atomic_path, atomic_write_text

    items = read_protocol(list_path)
    if not items:
        raise ValueError(f"{list_path} has no items; decode (recipe stage 7) writes the lists")
    if item_id is None:
        item = items[0]
    else:
        found = [i for i in items if i.id == item_id]
        if not found:
            raise ValueError(f"no item {item_id!r} in {list_path}; e.g. {items[0].id!r}")
        item = found[0]
    cuts = CutSet.from_file(cuts_path).to_eager()
    if item.prompt_cut_id not in cuts:
        raise ValueError(f"{cuts_path} lacks the prompt cut {item.prompt_cut_id!r} of {item.id}")
    wave, sr = load_prompt_audio(item, cuts)
    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / "prompt.wav"
    with atomic_path(wav, keep_suffix=True) as tmp:
        sf.write(str(tmp), wave, sr)
    atomic_write_text(out_dir / "prompt.txt", item.prompt_text + "\n")
    log.info("prompt: %s (%s, %.1f s): %r", wav, item.prompt_cut_id, len(wave) / sr,
             item.prompt_text)  # fmt: skip
    return wav, item.prompt_text


def sayable_sentences(
    synth: Any, sentences: list[Any], prompt_text: str
) -> tuple[list[Any], list[str]]:
    """The sentences whose phonemes are all in the model's symbol table, and one line per
    sentence left out (``"<id>: <why>"``, also logged): a model trained on a small corpus may
    lack a phoneme of the list; the rest of the test still runs."""
    from valle.text.errors import UnknownSymbolError

    keep, left_out = [], []
    for s in sentences:
        try:
            synth.text_ids(s.text, prompt_text, "en")
        except UnknownSymbolError as e:
            left_out.append(f"{s.id}: {e}")
            log.warning("left out %s (%r): %s", s.id, s.text, e)
        else:
            keep.append(s)
    return keep, left_out


def compare(dirs: Sequence[Path], out: Path | None) -> int:
    """Print (and write) the systems' hard-sentence tables as one table."""
    from valle.eval.hard import format_hard_tables
    from valle.io.atomic import atomic_write_text

    summaries = []
    for d in dirs:
        path = d / "hard_summary.json"
        if not path.is_file():
            print(f"valle-hard: error: {path} not found; run valle-hard with --out-dir {d} first",
                  file=sys.stderr)  # fmt: skip
            return 1
        summaries.append(json.loads(path.read_text()))
    table = format_hard_tables(summaries)
    if out is not None:
        atomic_write_text(out, table + "\n")
    print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    if args.compare is not None:
        return compare(args.compare, args.out)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import soundfile as sf

    from valle.eval.asr import build_asr
    from valle.eval.hard import (
        format_hard_table,
        load_hard_sentences,
        score_hard_case,
        summarize_hard,
        synthesize_hard,
    )
    from valle.inference import Synthesizer
    from valle.io.atomic import atomic_path, atomic_write_text

    try:
        sentences = load_hard_sentences(args.sentences)
        if args.prompt_list is not None:
            args.prompt_wav, args.prompt_text = prompt_from_list(
                args.prompt_list, args.cuts, args.prompt_item, args.out_dir
            )
        synth = Synthesizer.from_checkpoint(
            args.checkpoint, codec=args.codec_dir, tokens=args.tokens, device=args.device,
            max_len_ratio=args.max_len_ratio, model_overrides=args.model_overrides,
            quantize=args.quantize,
        )  # fmt: skip
        sentences, unsayable = sayable_sentences(synth, sentences, args.prompt_text)
        if not sentences:
            raise ValueError("the model can say none of the sentences: " + "; ".join(unsayable))
        waves = synthesize_hard(synth, sentences, str(args.prompt_wav), args.prompt_text,
                                seed=args.seed, progress=not args.no_progress)  # fmt: skip
        asr = build_asr(args.asr, args.asr_path, args.device)
        cases = []
        wav_dir = args.out_dir / "wav"
        wav_dir.mkdir(parents=True, exist_ok=True)
        for s, (wave, sr, capped) in zip(sentences, waves, strict=True):
            with atomic_path(wav_dir / f"{s.id}.wav", keep_suffix=True) as tmp:
                sf.write(str(tmp), wave, sr)
            (hyp,) = asr.transcribe([wave], sr, "en")
            cases.append(score_hard_case(s, hyp, capped))
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"valle-hard: error: {e}", file=sys.stderr)
        return 1
    summary = summarize_hard(cases)
    system = args.system or Path(args.checkpoint).parent.name
    summary["system"] = system
    summary["unsayable"] = unsayable
    summary["model_overrides"] = list(args.model_overrides)
    summary["quantize"] = args.quantize
    rows = "".join(json.dumps(c.row()) + "\n" for c in cases)
    atomic_write_text(args.out_dir / "hard_rows.jsonl", rows)
    atomic_write_text(args.out_dir / "hard_summary.json", json.dumps(summary, indent=2) + "\n")
    table = format_hard_table(summary, system)
    atomic_write_text(args.out_dir / "hard_table.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
