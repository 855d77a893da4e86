r"""valle-infer: zero-shot TTS with a trained checkpoint (recipe stage 7).

    # one utterance
    valle-infer --checkpoint exp/valle/model.pt --prompt-wav spk1.wav \
        --prompt-text "transcript of the prompt" --text "what to say" --out out.wav

    # many: one JSON object per line {"id", "text", "prompt_wav", "prompt_text", "language"}
    valle-infer --checkpoint exp/valle/model.pt --jobs jobs.jsonl --out-dir exp/valle/decode \
        --batch-size 8

The symbol table and codec come from the checkpoint when it carries them, else from --tokens
and --codec-dir (a directory with codec.json, a mel-RVQ or an EnCodec directory). Prompts
longer than 1.5 x --prompt-seconds are cut at a pause near --prompt-seconds, the transcript
proportionally (a warning says so; --no-trim keeps them whole). Outputs are 16-bit WAVs at
the codec's rate, written atomically; the continuation only.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("valle.bin.infer")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


class InferError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from valle.sampling.factory import SAMPLER_KINDS

    p = argparse.ArgumentParser(
        prog="valle-infer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="<exp>/model.pt or a Lightning .ckpt")
    one = p.add_argument_group("one utterance")
    one.add_argument("--text", help="text to speak")
    one.add_argument("--prompt-wav", help="prompt recording (any rate / channels)")
    one.add_argument("--prompt-text", help="transcript of the prompt recording")
    one.add_argument("--out", help="output wav")
    many = p.add_argument_group("many utterances")
    many.add_argument("--jobs", help='JSONL: {"id","text","prompt_wav","prompt_text","language"}')
    many.add_argument("--out-dir", help="output directory: <id>.wav per job")
    many.add_argument("--batch-size", type=int, default=8, help="jobs per generate call")
    p.add_argument("--language", default="en", help="language of --text (en, zh, ja)")
    p.add_argument(
        "--prompt-language", default=None, help="language of the prompt (default: --language)"
    )
    p.add_argument("--tokens", help="tokens.txt (when the checkpoint carries no symbol table)")
    p.add_argument("--codec-dir", help="codec directory (when the checkpoint carries no codec)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0, help="random seed of the samplers")
    p.add_argument(
        "--sampler",
        choices=SAMPLER_KINDS,
        default=None,
        help="AR sampler (default: the checkpoint config's)",
    )
    p.add_argument("--top-k", type=int, default=None, help="keep the k most likely codes")
    p.add_argument("--top-p", type=float, default=None, help="nucleus mass in (0, 1]")
    p.add_argument("--temperature", type=float, default=None, help="softmax temperature > 0")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length to trim to (s)")
    p.add_argument("--no-trim", action="store_true", help="keep long prompts whole")
    p.add_argument(
        "--max-len-ratio",
        type=float,
        default=None,
        help="AR bound: new frames per text token (default: the config's)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _sampler(args: argparse.Namespace) -> Any:
    from valle.sampling import build_sampler

    if args.sampler is None:
        if any(v is not None for v in (args.top_k, args.top_p, args.temperature)):
            raise InferError("--top-k/--top-p/--temperature need --sampler sample|repetition_aware")
        return None
    return build_sampler(
        args.sampler, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p
    )


def read_jobs(path: str | Path, default_language: str = "en") -> list[Any]:
    """Jobs of a JSONL file; relative prompt paths are tried from the cwd, then the file's dir."""
    from valle.inference import SynthesisJob

    path = Path(path)
    if not path.is_file():
        raise InferError(f"--jobs file {path} not found")
    jobs, seen = [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise InferError(f"{where}: not JSON ({e})") from None
        if not isinstance(d, dict):
            raise InferError(f"{where}: expected a JSON object")
        missing = [k for k in ("id", "text", "prompt_wav", "prompt_text") if k not in d]
        if missing:
            raise InferError(f"{where}: missing key(s) {missing}")
        unknown = set(d) - {
            "id",
            "text",
            "prompt_wav",
            "prompt_text",
            "language",
            "prompt_language",
        }
        if unknown:
            raise InferError(f"{where}: unknown key(s) {sorted(unknown)}")
        job_id = str(d["id"])
        if not _SAFE_ID.match(job_id):
            raise InferError(f"{where}: id {job_id!r} must be a file name ([A-Za-z0-9._-])")
        if job_id in seen:
            raise InferError(f"{where}: id {job_id!r} appears twice")
        seen.add(job_id)
        wav = Path(d["prompt_wav"])
        if not wav.is_absolute() and not wav.exists() and (path.parent / wav).exists():
            wav = path.parent / wav
        jobs.append(
            SynthesisJob(
                text=d["text"],
                prompt_wav=wav,
                prompt_text=d["prompt_text"],
                language=d.get("language") or default_language,
                prompt_language=d.get("prompt_language"),
                id=job_id,
            )
        )
    if not jobs:
        raise InferError(f"--jobs file {path} holds no jobs")
    return jobs


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from valle.inference import PromptTrim, SynthesisJob, Synthesizer
    from valle.inference.wavfile import write_wav

    single = [args.text, args.prompt_wav, args.prompt_text, args.out]
    if args.jobs:
        if any(v is not None for v in single):
            raise InferError(
                "give either --jobs/--out-dir or --text/--prompt-wav/--prompt-text/--out"
            )
        if not args.out_dir:
            raise InferError("--jobs needs --out-dir")
        jobs = read_jobs(args.jobs, args.language)
        outs = [Path(args.out_dir) / f"{j.id}.wav" for j in jobs]
    else:
        if any(v is None for v in single):
            raise InferError(
                "pass --text, --prompt-wav, --prompt-text and --out (or --jobs and --out-dir)"
            )
        jobs = [SynthesisJob(args.text, Path(args.prompt_wav), args.prompt_text, args.language,
                             args.prompt_language)]  # fmt: skip
        outs = [Path(args.out)]
    if args.batch_size < 1:
        raise InferError("--batch-size must be >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise InferError(f"--device {args.device}: no CUDA device here; use --device cpu")
    trim = PromptTrim(seconds=None if args.no_trim else args.prompt_seconds)
    synth = Synthesizer.from_checkpoint(
        args.checkpoint,
        codec=args.codec_dir,
        tokens=args.tokens,
        device=args.device,
        sampler=_sampler(args),
        prompt_trim=trim,
        max_len_ratio=args.max_len_ratio,
    )
    start = time.perf_counter()
    generator = torch.Generator(device=synth.device).manual_seed(args.seed)
    total = 0.0
    bar = tqdm(total=len(jobs), unit="utt", disable=len(jobs) <= args.batch_size, file=sys.stderr)
    for i in range(0, len(jobs), args.batch_size):
        chunk = jobs[i : i + args.batch_size]
        results = synth.synthesize_batch(chunk, generator=generator)
        for out, (wave, sr) in zip(outs[i : i + args.batch_size], results, strict=True):
            write_wav(out, wave, sr)
            total += len(wave) / sr
            bar.write(f"wrote {out} ({len(wave) / sr:.2f} s)", file=sys.stdout)
        bar.update(len(chunk))
    bar.close()
    took = time.perf_counter() - start
    print(f"{len(jobs)} utterance(s), {total:.2f} s of speech in {took:.2f} s "
          f"(RTF {took / max(total, 1e-9):.3f})")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from valle.data.audio import AudioLoadError
    from valle.text.errors import UnknownSymbolError

    try:
        return run(args)
    except (InferError, ValueError, FileNotFoundError, UnknownSymbolError, AudioLoadError) as e:
        print(f"valle-infer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
