r"""valle-infer: zero-shot TTS with a trained checkpoint (recipe stage 7).

    # one utterance
    valle-infer --checkpoint exp/valle/model.pt --prompt-wav spk1.wav \
        --prompt-text "transcript of the prompt" --text "what to say" --out out.wav

    # many: one JSON object per line {"id", "text", "prompt_wav", "prompt_text", "language"}
    # (optional "prompt_language", "accent", "reference_wav")
    valle-infer --checkpoint exp/valle/model.pt --jobs jobs.jsonl --out-dir exp/valle/decode \
        --batch-size 8

    # prosody control (vallr, ralle): say --text with the timing (ralle: and pitch) of REF.wav,
    # a recording of --text; the aligner of the model's data gives its frames per phoneme
    valle-infer --checkpoint exp/vallr/model.pt --prompt-wav spk1.wav --prompt-text "..." \
        --text "what to say" --reference-wav ref.wav --aligner data/align/aligner.pt \
        [--speed 0.8] --out out.wav

A bad job (a malformed line, a missing prompt, text the model cannot say, an output it
cannot write) is reported with its id, line and reason, and the other jobs go on; the run
then exits 1 with a summary. Exit 2: nothing could run (bad arguments, checkpoint, --out).
Outputs are checked for writability before any synthesis. Text longer than --max-phonemes
phonemes is spoken in chunks (sentences, then clauses) joined by --chunk-pause s of silence.

The symbol table and codec come from the checkpoint when it carries them, else from --tokens
and --codec-dir (a directory with codec.json, a mel-RVQ or an EnCodec directory). Prompts
longer than 1.5 x --prompt-seconds are cut at a pause near --prompt-seconds, the transcript
proportionally (a warning says so; --no-trim keeps them whole). Outputs are 16-bit WAVs at
the codec's rate, written atomically; the continuation only.

Prosody control (a model with it: vallr, ralle): --speed scales the model's own durations;
--reference-wav (or a job's "reference_wav") is a recording that says --text (the job's
"text"): the trained aligner (--aligner, written by prepare.sh --align true) gives its codec
frames per target phoneme, which the model follows exactly (ralle: also its pitch tokens);
--speed and --pitch-scale then scale them. The aligner must come from the model's data (same
tokens.txt, same codec frame rate). A text longer than --max-phonemes is spoken in chunks
that take the durations of their own phonemes. With --aligner, a model that reads the
prompt's phoneme durations (vallr, ralle, melle_aligned) gets the aligner's, as in training.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("valle.bin.infer")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


class InferError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


@dataclass(frozen=True)
class JobFailure:
    """A job of a --jobs file that could not be synthesized (the others go on)."""

    id: str | None
    where: str  # <jobs file>:<line>
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: job {self.id or '?'}: {self.reason}"


def build_parser() -> argparse.ArgumentParser:
    from valle.inference.arguments import add_model_overrides
    from valle.inference.quantize import QUANTIZE_MODES
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
    many.add_argument(
        "--batch-size", type=int, default=8, help="jobs (or chunks of long ones) per generate call"
    )
    p.add_argument(
        "--language",
        default="en",
        help="language of --text (en, zh, ja; auto: detected by script); [EN]..[EN][ZH]..[ZH] "
        "tags in the text mark code-switched segments",
    )
    p.add_argument(
        "--prompt-language", default=None, help="language of the prompt (default: --language)"
    )
    p.add_argument(
        "--accent",
        default=None,
        help="language id of the generated speech for a model with language ids (vallex): "
        "default the text's own (native); e.g. the prompt's language speaks with its accent",
    )
    p.add_argument(
        "--tokens",
        help="tokens.txt (when the checkpoint carries no symbol table; one that differs from "
        "the checkpoint's own table is refused)",
    )
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
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        help="speaking rate for a model with prosody control (vallr, ralle): 0.8 slower, 1.25 "
        "faster; its own predicted alignment (ralle: durations) is scaled by 1/speed "
        "(default: the model's own rate)",
    )
    p.add_argument(
        "--pitch-scale",
        type=float,
        default=None,
        help="F0 factor for a model with pitch tokens (ralle): 1.2 higher, 0.8 lower; each "
        "predicted voiced pitch token moves by that many log-F0 buckets (default: its own)",
    )
    p.add_argument(
        "--reference-wav",
        default=None,
        help="prosody control (vallr, ralle; needs --aligner): a recording that says --text; "
        "the speech follows its frames per phoneme (ralle: and its pitch), then --speed / "
        '--pitch-scale; --jobs lines take it as "reference_wav"',
    )
    p.add_argument(
        "--aligner",
        default=None,
        help="trained aligner of the model's data (data/align/aligner.pt, prepare.sh --align "
        "true) that turns a reference recording into durations; it also aligns the prompt to "
        "its transcript for a model that reads prompt durations (vallr, ralle, melle_aligned; "
        "without it their prompts are split uniformly)",
    )
    p.add_argument(
        "--max-phonemes",
        type=int,
        default=150,
        help="longer text is spoken in chunks of at most this many phonemes (bounds memory)",
    )
    p.add_argument("--chunk-pause", type=float, default=0.25, help="silence between chunks (s)")
    p.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default="none",
        help="model weights at inference: none (float32), int8 (CPU; every linear layer) or "
        "bf16; the codec is unchanged",
    )
    add_model_overrides(
        p, "ar.sampler.scale=0 or 'prompt_stats=null' (MELLE's prompt-statistics post-filter)"
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


_JOB_KEYS = ("id", "text", "prompt_wav", "prompt_text", "language", "prompt_language", "accent",
             "reference_wav")  # fmt: skip
_OPTIONAL_KEYS = ("language", "prompt_language", "accent", "reference_wav")


def _decode_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InferError(
            f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
            "save the jobs file as UTF-8"
        ) from None


def _job(d: Any, base: Path, default_language: str, default_accent: str | None = None) -> Any:
    from valle.inference import SynthesisJob

    if not isinstance(d, dict):
        raise InferError("expected a JSON object")
    missing = [k for k in ("id", "text", "prompt_wav", "prompt_text") if k not in d]
    if missing:
        raise InferError(f"missing key(s) {missing}")
    unknown = set(d) - set(_JOB_KEYS)
    if unknown:
        raise InferError(f"unknown key(s) {sorted(unknown)}")
    for key in _JOB_KEYS:
        value = d.get(key)
        optional = key in _OPTIONAL_KEYS and value is None
        if not isinstance(value, str) and not optional and not (key == "id" and type(value) is int):
            raise InferError(f"{key!r} must be a string, got {type(value).__name__} {value!r}")
    wav = _near(Path(d["prompt_wav"]), base)
    reference = d.get("reference_wav")
    return SynthesisJob(
        text=d["text"],
        prompt_wav=wav,
        prompt_text=d["prompt_text"],
        language=d.get("language") or default_language,
        prompt_language=d.get("prompt_language"),
        id=str(d["id"]),
        accent=d.get("accent") or default_accent,
        reference_wav=None if reference is None else _near(Path(reference), base),
    )


def _near(path: Path, base: Path) -> Path:
    """A relative path from the cwd, else from ``base`` (the jobs file's directory)."""
    if not path.is_absolute() and not path.exists() and (base / path).exists():
        return base / path
    return path


def load_jobs(
    path: str | Path, default_language: str = "en", default_accent: str | None = None
) -> tuple[list[tuple[str, Any]], list[JobFailure]]:
    """The valid jobs of a JSONL file with their ``file:line``, and a :class:`JobFailure` for
    each bad line (the other lines are still read). Relative prompt paths are tried from the
    cwd, then the file's dir. Raises :class:`InferError` only when the file cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise InferError(f"--jobs file {path} not found")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InferError(f"cannot read --jobs file {path}: {e.strerror or e}") from None
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
        data = data[3:]
    jobs: list[tuple[str, Any]] = []
    failures: list[JobFailure] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        job_id: str | None = None
        try:
            line = _decode_line(raw)
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise InferError(f"not JSON ({e})") from None
            if isinstance(d, dict) and isinstance(d.get("id"), (str, int)):
                job_id = str(d["id"])
            if job_id is not None and not _SAFE_ID.match(job_id):
                bad, job_id = job_id, None
                raise InferError(f"id {bad!r} must be a file name ([A-Za-z0-9._-])")
            if job_id in seen:
                raise InferError(f"id {job_id!r} appears twice (first on line {seen[job_id]})")
            job = _job(d, path.parent, default_language, default_accent)
            if not Path(job.prompt_wav).is_file():
                raise InferError(f"prompt recording {job.prompt_wav} not found")
            if job.reference_wav is not None and not Path(job.reference_wav).is_file():
                raise InferError(f"reference recording {job.reference_wav} not found")
        except InferError as e:
            failures.append(JobFailure(job_id, f"{path}:{lineno}", str(e)))
            continue
        seen[job.id] = lineno
        jobs.append((f"{path}:{lineno}", job))
    return jobs, failures


def read_jobs(path: str | Path, default_language: str = "en") -> list[Any]:
    """Jobs of a JSONL file (see :func:`load_jobs`); the first bad line raises InferError."""
    jobs, failures = load_jobs(path, default_language)
    if failures:
        raise InferError(str(failures[0]))
    if not jobs:
        raise InferError(f"--jobs file {path} holds no jobs")
    return [job for _, job in jobs]


def _line(failure: JobFailure) -> int:
    tail = failure.where.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _reason(e: BaseException) -> str:
    from valle.data.audio import AudioLoadError

    if isinstance(e, (ValueError, LookupError, OSError, TypeError, AudioLoadError, InferError)):
        return str(e)
    return f"{type(e).__name__}: {e}"  # not a user error: say what kind


def _synthesize_isolated(
    synth: Any,
    part: list[tuple[str, Any, Path]],
    generator: Any,
    batch_size: int,
    fail: Any,
) -> list[tuple[str, Any, Path, Any, int]]:
    """Synthesize a batch of jobs so that a failing job fails alone: each is prepared on its
    own, and a batch whose generation fails is retried one job at a time."""
    prepared = []
    for where, job, out in part:
        try:
            prepared.append((where, job, out, synth.prepare(job)))
        except Exception as e:  # noqa: BLE001 - reported per job, the others go on
            fail(job.id, where, e)
    if not prepared:
        return []
    try:
        results = synth.synthesize_prepared(
            [p for *_, p in prepared], batch_size=batch_size, generator=generator
        )
    except Exception as e:  # noqa: BLE001
        if len(prepared) == 1:
            fail(prepared[0][1].id, prepared[0][0], e)
            return []
        log.warning("a batch of %d jobs failed (%s); retrying them one by one", len(prepared), e)
        ok, results = [], []
        for item in prepared:
            try:
                results += synth.synthesize_prepared([item[3]], generator=generator)
                ok.append(item)
            except Exception as e1:  # noqa: BLE001
                fail(item[1].id, item[0], e1)
        prepared = ok
    return [(w, j, o, wave, sr) for (w, j, o, _), (wave, sr) in zip(prepared, results, strict=True)]


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from valle.inference import PromptTrim, SynthesisJob, Synthesizer
    from valle.inference.wavfile import OutputPathError, check_writable, write_wav

    if args.batch_size < 1:
        raise InferError("--batch-size must be >= 1")
    if args.max_phonemes < 1:
        raise InferError("--max-phonemes must be >= 1")
    if not args.chunk_pause >= 0:
        raise InferError("--chunk-pause must be >= 0 seconds")
    failures: list[JobFailure] = []

    def fail(job_id: str | None, where: str, e: BaseException, write: Any = None) -> None:
        failures.append(JobFailure(job_id, where, _reason(e)))
        log.debug("job %s failed", job_id, exc_info=e)
        (write or print)(f"valle-infer: failed: {failures[-1]}", file=sys.stderr)

    single = [args.text, args.prompt_wav, args.prompt_text, args.out]
    if args.aligner is not None and not Path(args.aligner).is_file():
        raise InferError(
            f"--aligner {args.aligner} not found; the aligner stage writes it "
            "(prepare.sh --align true: data/align/aligner.pt)"
        )
    if args.jobs:
        if args.reference_wav is not None:
            raise InferError(
                '--reference-wav says --text; with --jobs give each job its "reference_wav"'
            )
        if any(v is not None for v in single):
            raise InferError(
                "give either --jobs/--out-dir or --text/--prompt-wav/--prompt-text/--out"
            )
        if not args.out_dir:
            raise InferError("--jobs needs --out-dir")
        loaded, failures = load_jobs(args.jobs, args.language, args.accent)
        for f in failures:
            print(f"valle-infer: failed: {f}", file=sys.stderr)
        out_dir = Path(args.out_dir)
        try:  # every job writes here: found now, not after synthesis
            check_writable(out_dir / "probe.wav")
        except OutputPathError as e:
            raise InferError(f"--out-dir {out_dir}: {e}") from None
        work: list[tuple[str, Any, Path]] = []
        for where, job in loaded:
            out = out_dir / f"{job.id}.wav"
            try:
                check_writable(out)
            except OutputPathError as e:
                fail(job.id, where, e)
                continue
            work.append((where, job, out))
        if not work:
            raise InferError(f"--jobs file {args.jobs}: no job can run ({len(failures)} failed)")
        if args.aligner is None and any(job.reference_wav is not None for _, job, _ in work):
            raise InferError(
                f'--jobs file {args.jobs}: jobs with a "reference_wav" need --aligner '
                "(data/align/aligner.pt, prepare.sh --align true)"
            )
    else:
        if any(v is None for v in single):
            raise InferError(
                "pass --text, --prompt-wav, --prompt-text and --out (or --jobs and --out-dir)"
            )
        reference = None
        if args.reference_wav is not None:
            reference = Path(args.reference_wav)
            if not reference.is_file():
                raise InferError(f"--reference-wav {reference} not found")
            if args.aligner is None:
                raise InferError(
                    "--reference-wav needs --aligner (data/align/aligner.pt, prepare.sh "
                    "--align true): the aligner turns the recording into durations"
                )
        job = SynthesisJob(args.text, Path(args.prompt_wav), args.prompt_text, args.language,
                           args.prompt_language, accent=args.accent,
                           reference_wav=reference)  # fmt: skip
        work = [("--text", job, check_writable(args.out))]  # before any synthesis
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
        max_text_tokens=args.max_phonemes,
        chunk_pause=args.chunk_pause,
        speed=args.speed,
        pitch_scale=args.pitch_scale,
        quantize=args.quantize,
        aligner=args.aligner,
        model_overrides=args.model_overrides,
    )
    start = time.perf_counter()
    generator = torch.Generator(device=synth.device).manual_seed(args.seed)
    total, done = 0.0, 0
    bar = tqdm(total=len(work), unit="utt", disable=len(work) <= args.batch_size, file=sys.stderr)
    for i in range(0, len(work), args.batch_size):
        part = work[i : i + args.batch_size]
        if args.jobs:

            def fail_job(job_id: str | None, where: str, e: BaseException) -> None:
                fail(job_id, where, e, write=bar.write)

            results = _synthesize_isolated(synth, part, generator, args.batch_size, fail_job)
        else:  # one utterance: its errors are the run's (exit 2); its chunks, if long,
            # go --batch-size at a time
            job = part[0][1]
            wave, sr = synth.synthesize_batch(
                [job], batch_size=args.batch_size, generator=generator
            )[0]
            results = [(*part[0], wave, sr)]
        for where, job, out, wave, sr in results:
            try:
                write_wav(out, wave, sr)
            except Exception as e:  # noqa: BLE001
                if not args.jobs:
                    raise
                fail(job.id, where, e, write=bar.write)
                continue
            done += 1
            total += len(wave) / sr
            bar.write(f"wrote {out} ({len(wave) / sr:.2f} s)", file=sys.stdout)
        bar.update(len(part))
    bar.close()
    took = time.perf_counter() - start
    print(f"{done} utterance(s), {total:.2f} s of speech in {took:.2f} s "
          f"(RTF {took / max(total, 1e-9):.3f})")  # fmt: skip
    if failures:
        n = len(failures) + done
        print(f"valle-infer: {len(failures)} of {n} job(s) failed, {done} written:",
              file=sys.stderr)  # fmt: skip
        for f in sorted(failures, key=_line):
            print(f"  {f}", file=sys.stderr)
        return 1
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
