"""valle-hard: the hard-sentence robustness test (RALL-E Sec 4) for one checkpoint.

Synthesizes the shipped hard sentences (valle/eval/resources/hard_sentences.txt: repeated
words, tongue twisters, numbers and dates, very short and very long sentences) in one
prompt's voice, transcribes them with an ASR and reports the WER and the share of bad cases
(WER > 50%, a skipped or a repeated word in the alignment, the length cap hit), overall and
per group (see valle.eval.hard).

python -m valle.bin.hard --checkpoint exp/ralle/model.pt --prompt-wav spk.wav
    --prompt-text "what the prompt says" --out-dir exp/ralle/hard [--asr faster-whisper]
    [--asr-path MODEL_DIR] [--system ralle] [--sentences my_list.txt] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("valle.bin.hard")


def build_parser() -> argparse.ArgumentParser:
    from valle.eval.asr import ASR_BACKENDS

    p = argparse.ArgumentParser(
        prog="valle-hard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, help="<exp>/model.pt or a Lightning .ckpt")
    p.add_argument("--prompt-wav", type=Path, required=True, help="the voice (a wav file)")
    p.add_argument("--prompt-text", required=True, help="transcript of the prompt")
    p.add_argument("--out-dir", type=Path, required=True, help="writes wavs, rows and summary")
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
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        synth = Synthesizer.from_checkpoint(
            args.checkpoint, codec=args.codec_dir, tokens=args.tokens, device=args.device,
            max_len_ratio=args.max_len_ratio,
        )  # fmt: skip
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
    rows = "".join(json.dumps(c.row()) + "\n" for c in cases)
    atomic_write_text(args.out_dir / "hard_rows.jsonl", rows)
    atomic_write_text(args.out_dir / "hard_summary.json", json.dumps(summary, indent=2) + "\n")
    table = format_hard_table(summary, system)
    atomic_write_text(args.out_dir / "hard_table.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
