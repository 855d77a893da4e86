"""``valle-bench``: evaluation benchmarks of zero-shot TTS systems.

Subcommands (each a small registered entry; see :func:`subcommand`):

- ``protocol``: write a continuation / cross-sentence test list from a lhotse CutSet;
- ``wer``: transcribe system outputs with an ASR backend and score WER (CER for zh/ja);
- ``sim``: speaker similarity of system outputs to their prompts (SIM-o), codec-resynthesized
  prompts (SIM-r) and the original utterances (SIM-utt);
- ``resynth``: pass the ground truth (and the prompts of a list) through the codec: the outputs of
  the "codec" row, and the reconstructed prompts for SIM-r (``sim --prompt-resynth-dir``);
- ``report``: merge JSON summaries into a CSV + markdown table and a PNG plot;
- ``speed``: inference speed (KV-cached AR ms/step, RTF, NAR time, peak memory) and training
  throughput (code frames/s of AdamW steps) of size presets or of a trained ``--checkpoint``;
  its ``--summary`` (named with ``--system``) adds these columns to that system's ``report`` row;
- ``diagnose``: learning diagnostics of a checkpoint on tokenized cuts: text-conditioning gap,
  persistence baselines, AR attention alignment (PNG maps), EOS and free-running lengths, and
  with a mel-RVQ codec each NAR stage's mel gain;
- ``loops``: the loop test of a checkpoint on tokenized cuts: the share of continuations that
  hit the length cap or repeat one code for more than 1 s, greedy vs repetition-aware sampling;
- ``ceiling``: what a perfect AR would give: WER of the ground truth through the codec keeping
  the first Q' codebooks, and of the ground-truth first codebook completed by the model's NAR;
- ``aligned-probe``: a learnability yardstick of data + codec: WER of a small conv net trained for
  minutes from frame-aligned phonemes (the aligner's durations) to codes and latent.

System outputs live in a directory as ``<item id>.wav`` (or ``<item id>-<k>.wav`` for sample k
of ``--n-samples``); ``--audio-from-cuts`` scores the corpus recordings themselves (the ground
truth row of a report).

Adding a subcommand (e.g. ``speed``): write ``configure(parser)`` and ``run(args) -> int`` and
decorate ``run`` with ``@subcommand("speed", "help text", configure)``, here or in a module
named in :data:`SUBCOMMAND_MODULES` (imported before the parser is built).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("valle.bench")

#: Modules that register more subcommands when imported (e.g. a speed benchmark).
SUBCOMMAND_MODULES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(
    name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``run`` as the subcommand ``name`` with arguments added by ``configure``."""

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        if name in SUBCOMMANDS:
            raise ValueError(f"subcommand {name!r} is registered twice")
        SUBCOMMANDS[name] = Subcommand(name, help, configure, run)
        return run

    return register


# --------------------------------------------------------------------------- shared helpers
class BenchError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def _load_cuts(path: str) -> Any:
    from valle.eval.cuts import load_cuts

    return load_cuts(path, eager=True)  # indexable by cut id


def _collect_waves(
    ids: Sequence[str], args: argparse.Namespace, list_file: str
) -> tuple[list[str], list[list[tuple[Any, int]]]]:
    from valle.eval.system_outputs import collect_waves

    after = None
    if args.after_prompt:
        from valle.eval.protocols import read_protocol

        if not str(list_file).endswith(".jsonl"):
            raise BenchError(f"--after-prompt needs a protocol list (.jsonl), got {list_file}")
        after = {i.id: i for i in read_protocol(list_file)}
    return collect_waves(
        ids, hyp_dir=args.hyp_dir, audio_from_cuts=args.audio_from_cuts,
        n_samples=args.n_samples, allow_missing=args.allow_missing, after_prompt_of=after,
    )  # fmt: skip


def _add_audio_source(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--hyp-dir", help="directory of system outputs <id>.wav (<id>-<k>.wav)")
    src.add_argument(
        "--audio-from-cuts", metavar="CUTS", help="score the recordings of this cuts manifest"
    )
    p.add_argument("--n-samples", type=int, default=1, help="samples per item (<id>-<k>.wav)")
    p.add_argument(
        "--rerank-scores",
        default=None,
        metavar="CSV",
        help="with --n-samples > 1: the other metric's per-sample scores (<out>/sim_samples.csv "
        "of `sim`, <out>/wer_samples.csv of `wer`), for a --rerank criterion that reads both",
    )
    p.add_argument("--allow-missing", action="store_true", help="skip items without output")
    p.add_argument(
        "--after-prompt",
        action="store_true",
        help="the waves are whole target utterances (ground truth, codec resynthesis): score "
        "only the part after each continuation item's prompt window, as a continuation "
        "system's output is (needs a protocol list)",
    )
    p.add_argument("--system", help="system name in the summary (default: the directory name)")
    p.add_argument("--out-dir", required=True, help="where rows and the summary are written")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_rerank(p: argparse.ArgumentParser, default: str) -> None:
    from valle.eval.rerank import RERANK_CRITERIA

    p.add_argument(
        "--rerank",
        default=default,
        choices=sorted(RERANK_CRITERIA),
        help=f"how the best of --n-samples is chosen (valle.eval.rerank; default {default}; "
        "sim_cap_wer: VALL-E 2's [min(SIM, 0.3), 1 - WER], needs --rerank-scores)",
    )


def _best_of_n(
    args: argparse.Namespace, ids: Sequence[str], own: Sequence[Sequence[Any]], kind: str
) -> tuple[list[int], str]:
    from valle.eval.rerank import rerank_samples

    return rerank_samples(args.out_dir, ids, own, kind, args.rerank, args.rerank_scores)


def _system_name(args: argparse.Namespace) -> str:
    if args.system:
        return str(args.system)
    if args.audio_from_cuts:
        return "ground truth"
    return Path(args.hyp_dir).resolve().name


# --------------------------------------------------------------------------- protocol
def _configure_protocol(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cuts", required=True, help="lhotse cuts manifest (e.g. test-clean)")
    p.add_argument("--setting", required=True, help="cont (continuation) or cross (sentence)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output list (.jsonl)")
    p.add_argument("--prompt-seconds", type=float, default=3.0,
                   help="longest prompt (s); with word times it ends at a word boundary")  # fmt: skip
    p.add_argument("--min-seconds", type=float, default=4.0)
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--max-items", type=int, default=None, help="random subset of this size")
    p.add_argument("--n-samples", type=int, default=1, help="samples to synthesize per item")


@subcommand("protocol", "write a continuation / cross-sentence test list", _configure_protocol)
def run_protocol(args: argparse.Namespace) -> int:
    from valle.eval.protocols import build_protocol, write_protocol

    items = build_protocol(
        _load_cuts(args.cuts),
        args.setting,
        seed=args.seed,
        prompt_seconds=args.prompt_seconds,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        max_items=args.max_items,
        n_samples=args.n_samples,
    )
    write_protocol(items, args.out)
    n_prop = sum(i.prompt_text_source == "proportional" for i in items)
    print(f"wrote {len(items)} items to {args.out}")
    if n_prop:
        print(f"note: {n_prop} prompt transcripts use the time-proportional split (no alignment)")
    return 0


# --------------------------------------------------------------------------- wer
def _configure_wer(p: argparse.ArgumentParser) -> None:
    from valle.eval.asr import ASR_BACKENDS

    _add_audio_source(p)
    p.add_argument(
        "--ref", required=True, help="protocol list, cuts manifest or '<id> <text>' list"
    )
    p.add_argument("--ref-field", default="text", help="for protocol lists: text or target_text")
    p.add_argument("--asr", default="faster-whisper", choices=sorted(ASR_BACKENDS))
    p.add_argument("--asr-path", default=None, help="model directory or hub name of the backend")
    p.add_argument("--language", default=None, help="ISO 639-1 code (default: from refs, or en)")
    _add_rerank(p, "wer")


@subcommand("wer", "transcribe outputs and score WER/CER", _configure_wer)
def run_wer(args: argparse.Namespace) -> int:
    from valle.eval.asr import build_asr
    from valle.eval.files import write_json, write_jsonl
    from valle.eval.references import load_references
    from valle.eval.rerank import SampleScore
    from valle.eval.transcribe import transcribe_samples
    from valle.eval.wer import CorpusErrors, score_corpus

    refs, kind = load_references(args.ref, args.ref_field)
    by_id = {r.id: r for r in refs}
    ids, waves = _collect_waves([r.id for r in refs], args, args.ref)
    languages = {lang for i in ids if (lang := by_id[i].language)}
    if args.language is None and len(languages) > 1:
        raise BenchError(f"references mix languages {sorted(languages)}; score one at a time")
    language = args.language or (languages.pop() if languages else "en")
    asr = build_asr(args.asr, args.asr_path, args.device)
    out_dir = Path(args.out_dir)
    transcripts = []
    per_sample: list[CorpusErrors] = []
    for k, hyps in enumerate(
        transcribe_samples(asr, waves, language, progress=not args.no_progress)
    ):
        transcripts += [
            {"id": i, "sample": k, "hypothesis": h} for i, h in zip(ids, hyps, strict=True)
        ]
        per_sample.append(score_corpus(ids, [by_id[i].text for i in ids], hyps, language))
    first = per_sample[0]
    first.write_csv(out_dir / "wer_rows.csv")
    write_jsonl(out_dir / "wer_transcripts.jsonl", transcripts)
    summary: dict[str, Any] = {
        "system": _system_name(args),
        **first.summary(),
        "wer": first.error_rate,
        "asr": args.asr,
        "language": language,
        "references": kind,
    }
    if len(per_sample) > 1:
        own = [
            [SampleScore(k, c.rows[n].errors, c.rows[n].ref_len) for k, c in enumerate(per_sample)]
            for n in range(len(ids))
        ]
        picks, rerank = _best_of_n(args, ids, own, "wer")
        best = CorpusErrors(
            rows=[per_sample[k].rows[n] for n, k in enumerate(picks)], unit=first.unit
        )
        best.write_csv(out_dir / "wer_rows_best_of_n.csv")
        summary["wer_best_of_n"] = best.error_rate
        summary["n_samples"] = len(per_sample)
        summary["rerank"] = rerank
    write_json(out_dir / "wer_summary.json", summary)
    print(
        f"{summary['system']}: {first.metric} {100 * first.error_rate:.2f}% over {len(ids)} "
        f"utterances ({first.ref_len} reference tokens)"
    )
    if "wer_best_of_n" in summary:
        print(f"best of {len(per_sample)} samples: {100 * summary['wer_best_of_n']:.2f}%")
    return 0


# --------------------------------------------------------------------------- sim
def _configure_sim(p: argparse.ArgumentParser) -> None:
    from valle.eval.similarity import SPEAKER_ENCODERS

    _add_audio_source(p)
    p.add_argument("--list", required=True, help="protocol list (.jsonl) from `protocol`")
    p.add_argument("--cuts", required=True, help="cuts manifest holding prompts and originals")
    p.add_argument(
        "--prompt-resynth-dir", default=None, help="codec-resynthesized prompts <id>.wav, for SIM-r"
    )
    p.add_argument("--no-original", action="store_true", help="skip SIM-utt")
    p.add_argument("--encoder", default="resemblyzer", choices=sorted(SPEAKER_ENCODERS))
    p.add_argument("--encoder-path", default=None, help="model directory or hub name")
    _add_rerank(p, "sim")


@subcommand("sim", "speaker similarity to prompt / resynthesized prompt / original", _configure_sim)
def run_sim(args: argparse.Namespace) -> int:
    from valle.eval.files import write_json
    from valle.eval.protocol_similarity import score_protocol_samples
    from valle.eval.protocols import read_protocol
    from valle.eval.similarity import SimilarityResult, build_speaker_encoder

    items = {i.id: i for i in read_protocol(args.list)}
    cuts = _load_cuts(args.cuts)
    ids, waves = _collect_waves(list(items), args, args.list)
    encoder = build_speaker_encoder(args.encoder, args.encoder_path, args.device)
    results = score_protocol_samples(
        encoder, items, cuts, ids, waves, args.prompt_resynth_dir, not args.no_original
    )
    out_dir = Path(args.out_dir)
    results[0].write_csv(out_dir / "sim_rows.csv")
    summary: dict[str, Any] = {
        "system": _system_name(args),
        **results[0].summary(),
        "encoder": args.encoder,
    }
    if len(results) > 1:
        from valle.eval.rerank import SampleScore

        # best of N by --rerank: SIM-o by default, VALL-E 2's capped SIM-o then WER, ...
        own = [
            [SampleScore(k, similarity=r.rows[n].sim_o) for k, r in enumerate(results)]
            for n in range(len(ids))
        ]
        picks, rerank = _best_of_n(args, ids, own, "sim")
        best = SimilarityResult(rows=[results[k].rows[n] for n, k in enumerate(picks)])
        best.write_csv(out_dir / "sim_rows_best_of_n.csv")
        summary["sim_o_best_of_n"] = best.mean("sim_o")
        summary["n_samples"] = len(results)
        summary["rerank"] = rerank
    write_json(out_dir / "sim_summary.json", summary)
    shown = ", ".join(
        f"{k} {v:.3f}" for k, v in summary.items() if k.startswith("sim") and v is not None
    )
    print(f"{summary['system']}: {shown} over {len(ids)} utterances")
    return 0


# --------------------------------------------------------------------------- resynth
def _configure_resynth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cuts", required=True, help="cuts manifest with the ground-truth audio")
    p.add_argument(
        "--list",
        default=None,
        help="protocol list: resynthesize its targets and, under prompts/, its prompts",
    )
    p.add_argument(
        "--codec",
        default="encodec",
        help="codec name in the codec registry (valle.codec.registry): encodec, mel_rvq, ...",
    )
    p.add_argument(
        "--codec-path", required=True, help="the codec's directory (or an EnCodec hub id)"
    )
    p.add_argument(
        "--bandwidth", type=float, default=None, help="EnCodec kbps (default 6.0 = 8 codebooks)"
    )
    p.add_argument("--num-codebooks", type=int, default=None, help="decode the first Q' only")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda")
    p.add_argument("--out-dir", required=True, help="writes <id>.wav (and prompts/<id>.wav)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@subcommand(
    "resynth",
    "codec resynthesis of ground truth and prompts (codec row, SIM-r)",
    _configure_resynth,
)
def run_resynth(args: argparse.Namespace) -> int:
    from valle.codec.registry import load_codec
    from valle.eval.protocols import read_protocol
    from valle.eval.resynth_files import cut_jobs, protocol_jobs, write_resynthesized

    cuts = _load_cuts(args.cuts)
    # the codec's own defaults apply; a codec that takes no bandwidth refuses it clearly
    options = {} if args.bandwidth is None else {"bandwidth": args.bandwidth}
    codec = load_codec(args.codec, args.codec_path, args.device, **options)
    out_dir = Path(args.out_dir)
    if args.list:
        items = read_protocol(args.list)
        jobs, total = protocol_jobs(items, cuts, out_dir), 2 * len(items)
    else:
        jobs, total = cut_jobs(cuts, out_dir), len(cuts)
    n = write_resynthesized(codec, jobs, args.num_codebooks, total, not args.no_progress)
    print(f"wrote {n} waves at {codec.sample_rate} Hz under {out_dir}")
    return 0


# --------------------------------------------------------------------------- report
def _configure_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", nargs="+", required=True, help="JSON summaries (wer/sim/speed)")
    p.add_argument("--out", required=True, help="output prefix: writes .csv, .md and .png")


@subcommand("report", "merge summaries into CSV / markdown / PNG", _configure_report)
def run_report(args: argparse.Namespace) -> int:
    from valle.eval.report import ResultsTable, load_summaries

    table = ResultsTable.from_summaries(load_summaries(args.inputs))
    paths = table.write_all(args.out)
    print(table.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


# --------------------------------------------------------------------------- speed
# The benchmark lives in valle.eval.speed (rows), valle.eval.speed_table (table and files).
def _configure_speed(p: argparse.ArgumentParser) -> None:
    from valle.inference.quantize import QUANTIZE_MODES

    p.add_argument("--sizes", default="tiny,base", help="size presets, comma-separated")
    p.add_argument("--variant", default="valle",
                   help="variant preset of the random models (e.g. valle2; not with --checkpoint)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override of the random models, repeatable "
                        "(e.g. --set ar.layout.group=2)")  # fmt: skip
    p.add_argument("--batch-sizes", default="1,8", help="batch sizes, comma-separated")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seconds", type=float, default=10.0, help="speech per row (s)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="acoustic prompt (s)")
    p.add_argument("--phonemes", type=int, default=120, help="text tokens per row")
    p.add_argument("--nocache-points", type=int, default=3,
                   help="sequence lengths timed for the no-cache estimate")  # fmt: skip
    p.add_argument("--nar-stages-timed", type=int, default=None,
                   help="NAR stages to run (scaled to all; default: all)")  # fmt: skip
    p.add_argument("--checkpoint", default=None,
                   help="measure this trained model (its own config) instead of --sizes")  # fmt: skip
    p.add_argument("--codec-dir", default=None,
                   help="codec.json (or its directory) for the frame rate of a --checkpoint "
                        "that carries no codec facts")  # fmt: skip
    p.add_argument("--frame-rate", type=float, default=None,
                   help="code frames per second (default: the checkpoint's codec, else 75)")  # fmt: skip
    p.add_argument("--system", default=None,
                   help="system name of the summary (the model's row in `valle-bench report`)")  # fmt: skip
    p.add_argument("--train-steps", type=int, default=3,
                   help="timed training steps for train tokens/s (0: no training measurement)")  # fmt: skip
    p.add_argument("--train-warmup", type=int, default=1, help="untimed training steps first")
    p.add_argument("--train-batch", type=int, default=4, help="utterances per training batch")
    p.add_argument("--train-seconds", type=float, default=5.0,
                   help="speech per training utterance (s)")  # fmt: skip
    p.add_argument("--train-checkpointing", action="store_true",
                   help="activation checkpointing per layer in the training steps")  # fmt: skip
    p.add_argument("--quantize", choices=QUANTIZE_MODES, default="none",
                   help="inference weights: none (float32), int8 (CPU, every linear layer; the "
                        "floor stays the float32 one, int8 reads a quarter of its bytes) or "
                        "bf16; no training measurement with a quantized model")  # fmt: skip
    p.add_argument("--out", default=None, help="CSV of all measured fields")
    p.add_argument("--summary", default=None, help="JSON summaries for `valle-bench report`")


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"--{what} must list positive integers, got {text!r}")
    return values


def _speed_setups(args: argparse.Namespace) -> tuple[Any, Any]:
    """The :class:`SpeedSetup` and the :class:`TrainSetup` (None: no training) of the args."""
    from valle.eval.speed import SpeedSetup, TrainSetup

    if args.seconds <= 0 or args.prompt_seconds < 0 or args.phonemes < 1:
        raise ValueError("--seconds must be > 0, --prompt-seconds >= 0, --phonemes >= 1")
    if args.nocache_points < 1:
        raise ValueError("--nocache-points must be >= 1")
    if args.train_steps < 0 or args.train_warmup < 0 or args.train_batch < 1:
        raise ValueError("--train-steps and --train-warmup must be >= 0, --train-batch >= 1")
    if args.train_seconds <= 0 or (args.frame_rate is not None and args.frame_rate <= 0):
        raise ValueError("--train-seconds and --frame-rate must be > 0")
    train = None
    if args.train_steps > 0 and args.quantize != "none":
        logger.info("--quantize %s: inference only, no training measurement", args.quantize)
    elif args.train_steps > 0:
        train = TrainSetup(
            batch=args.train_batch,
            seconds=args.train_seconds,
            prompt_seconds=min(args.prompt_seconds, args.train_seconds),
            phonemes=args.phonemes,
            steps=args.train_steps,
            warmup=args.train_warmup,
            checkpointing=args.train_checkpointing,
        )
    setup = SpeedSetup(
        seconds=args.seconds,
        prompt_seconds=args.prompt_seconds,
        phonemes=args.phonemes,
        nocache_points=args.nocache_points,
        nar_stages_timed=args.nar_stages_timed,
        device=args.device,
        **({"frame_rate": args.frame_rate} if args.frame_rate else {}),
    )
    return setup, train


@subcommand(
    "speed",
    "speed and cost: KV-cached AR vs recomputation, RTF, memory, training tokens/s",
    _configure_speed,
)
def run_speed(args: argparse.Namespace) -> int:
    from functools import partial

    import torch

    from valle.config import preset_path
    from valle.eval.files import write_json
    from valle.eval.speed import build_random_model, setup_for_checkpoint, speed_rows
    from valle.eval.speed_table import format_table, summaries, write_table
    from valle.eval.trained_model import load_trained_model

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if args.checkpoint is None:
        for s in sizes:
            preset_path("size", s)  # unknown size: ConfigError (a ValueError) naming the presets
        preset_path("variant", args.variant)
    elif args.variant != "valle" or args.overrides:
        raise ValueError("--variant and --set choose random models; a --checkpoint has its own")
    batches = _int_list(args.batch_sizes, "batch-sizes")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA device here; use --device cpu")
    setup, train = _speed_setups(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    weights = None
    if args.checkpoint is not None:
        trained = load_trained_model(
            args.checkpoint, args.device, args.codec_dir,
            need_ar="the speed benchmark times AR decoding (pass the complete AR + NAR "
            "checkpoint, e.g. exp/.../nar/model.pt)",
        )  # fmt: skip
        setup = setup_for_checkpoint(setup, trained, keep_frame_rate=args.frame_rate is not None)
        label = Path(args.checkpoint).parent.name + "/" + Path(args.checkpoint).name
        models = [(label, lambda: trained.model)]
        weights = f"weights of {args.checkpoint}, random inputs"
    else:
        variant, overrides = args.variant, list(args.overrides)
        models = [
            (size if variant == "valle" else f"{variant}/{size}",
             partial(build_random_model, size, setup, variant, overrides))
            for size in sizes
        ]  # fmt: skip

    def progress(row: Any) -> None:
        print(format_table([row]).split("\n")[2], flush=True)  # the row alone

    rows = speed_rows(models, batches, setup, train, args.quantize, weights, progress)
    print()
    print(format_table(rows))
    if args.out:
        print(f"wrote {write_table(rows, args.out)}")
    if args.summary:
        print(f"wrote {write_json(args.summary, summaries(rows, args.system))}")
    return 0


# --------------------------------------------------------------------------- loops
# The loop test lives in valle.eval.loops.
def _configure_loops(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="model.pt or a valle-train checkpoint")
    p.add_argument("--cuts", required=True, help="tokenized test cuts (codes + phonemes)")
    p.add_argument("--sampler", default="greedy,ras",
                   help="samplers to compare, comma-separated: a registry kind (greedy, sample, "
                        "repetition_aware), ras (repetition_aware) or default (the model's)")  # fmt: skip
    p.add_argument("--top-p", type=float, default=None,
                   help="nucleus of the samplers that read one (default: ras 0, i.e. greedy, so "
                        "greedy vs ras isolates RAS; the registry's own for the others)")  # fmt: skip
    p.add_argument("--window", type=int, default=10, help="ras window K (codes)")
    p.add_argument("--threshold", type=float, default=0.1, help="ras threshold t_r")
    p.add_argument("--run-seconds", type=float, default=1.0,
                   help="a run of one code longer than this counts as a loop (s)")  # fmt: skip
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="continuation prompt (s)")
    p.add_argument("--max-len-ratio", type=float, default=None,
                   help="length bound, frames per text token (default: the model's)")  # fmt: skip
    p.add_argument("--max-cuts", type=int, default=None, help="the first N cuts only")
    p.add_argument("--language", default=None, help="only cuts in this language (e.g. en)")
    p.add_argument("--tokens", default=None, help="tokens.txt if the checkpoint has no symbols")
    p.add_argument("--codec-dir", default=None,
                   help="codec.json (or its directory) if the checkpoint has no codec facts")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8, help="rows per generate call")
    p.add_argument("--seed", type=int, default=0, help="seed of each sampler's generator")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", default=None, help="write the summary here (JSON)")
    p.add_argument("--rows", default=None, help="write every decoded row here (CSV)")


@subcommand(
    "loops",
    "loop test: share of AR continuations that hit the length cap or repeat a code > 1 s, "
    "greedy vs repetition-aware sampling",
    _configure_loops,
)
def run_loops(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from valle.eval.files import write_csv, write_json
    from valle.eval.loops import LoopRow, format_loop_table, loops_checkpoint

    samplers = [s.strip() for s in args.sampler.split(",") if s.strip()]
    if args.batch_size < 1 or args.run_seconds <= 0 or args.prompt_seconds <= 0:
        raise ValueError("--batch-size must be >= 1, --run-seconds and --prompt-seconds > 0")
    summary, rows = loops_checkpoint(
        args.checkpoint, args.cuts, samplers, tokens=args.tokens, codec_dir=args.codec_dir,
        max_cuts=args.max_cuts, language=args.language, device=args.device,
        prompt_seconds=args.prompt_seconds, run_seconds=args.run_seconds, seed=args.seed,
        batch_size=args.batch_size, max_len_ratio=args.max_len_ratio, top_p=args.top_p,
        window=args.window, threshold=args.threshold, progress=not args.no_progress,
    )  # fmt: skip
    print(format_loop_table(summary["samplers"], args.run_seconds))
    print(
        f"\n{summary['frame_rate']:g} frames/s ({summary['frame_rate_from']}), "
        f"{summary['frames_per_step']} frame(s) per AR step, prompt {args.prompt_seconds:g} s, "
        f"bound {summary['max_len_ratio']:g} frames per text token; ras: top-p "
        f"{0.0 if args.top_p is None else args.top_p:g}, "
        f"K {args.window}, t_r {args.threshold:g}"
    )
    if args.json:
        print(f"wrote {write_json(Path(args.json), summary)}")
    if args.rows:
        names = list(LoopRow.__dataclass_fields__)
        print(f"wrote {write_csv(Path(args.rows), names, [asdict(r) for r in rows])}")
    return 0


# --------------------------------------------------------------------------- diagnose
def _configure_diagnose(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="model.pt or a valle-train checkpoint")
    p.add_argument(
        "--cuts", required=True, help="tokenized cuts (codes + phonemes), e.g. the dev split"
    )
    p.add_argument("--max-cuts", type=int, default=None, help="the first N cuts only")
    p.add_argument("--language", default=None, help="only cuts in this language (e.g. en)")
    p.add_argument("--json", default=None, help="write the figures here (JSON)")
    p.add_argument(
        "--attention-dir",
        default=None,
        help="PNG attention maps (default: attention/ beside --json; none without --json)",
    )
    p.add_argument("--images", type=int, default=4, help="utterances whose maps are drawn")
    p.add_argument("--tokens", default=None, help="tokens.txt if the checkpoint has no symbols")
    p.add_argument("--codec-dir", default=None,
                   help="the codec: codec.json (or its directory) if the checkpoint has no "
                        "codec facts (else the cuts' frame rate); a mel-RVQ codec (its "
                        "directory, or the one the checkpoint carries) adds the NAR's mel gain")  # fmt: skip
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="free-running prompt (s)")
    p.add_argument("--seed", type=int, default=0, help="NAR prompt draws and AR sampling")
    p.add_argument("--no-free-running", action="store_true", help="skip AR generation")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda")


@subcommand(
    "diagnose",
    "learning diagnostics: text gap, persistence baselines, attention alignment, stopping",
    _configure_diagnose,
)
def run_diagnose(args: argparse.Namespace) -> int:
    from valle.eval.diagnose import diagnose_checkpoint, format_report, write_attention_pngs
    from valle.eval.files import write_json

    summary, acc = diagnose_checkpoint(
        args.checkpoint,
        args.cuts,
        tokens=args.tokens,
        codec_dir=args.codec_dir,
        max_cuts=args.max_cuts,
        language=args.language,
        device=args.device,
        prompt_seconds=args.prompt_seconds,
        seed=args.seed,
        free_running=not args.no_free_running,
        keep_maps=args.images,
    )
    print(format_report(summary))
    image_dir = args.attention_dir
    if image_dir is None and args.json:
        image_dir = Path(args.json).parent / "attention"
    if image_dir is not None and acc.maps:
        paths = write_attention_pngs(acc, image_dir)
        summary["attention_images"] = [str(p) for p in paths]
        print(f"wrote {len(paths)} attention maps under {image_dir}")
    if args.json:
        write_json(Path(args.json), summary)
        print(f"wrote {args.json}")
    return 0


# --------------------------------------------------------------------------- ceiling
def _configure_ceiling(p: argparse.ArgumentParser) -> None:
    from valle.eval.asr import ASR_BACKENDS

    p.add_argument("--checkpoint", required=True, help="model.pt or a valle-train checkpoint")
    p.add_argument(
        "--list", required=True, help="protocol list, e.g. <exp>/decode/lists/cross_en.jsonl"
    )
    p.add_argument("--cuts", required=True, help="cuts manifest with the list's audio (test cuts)")
    p.add_argument(
        "--out-dir", required=True, help="writes <system>/<id>.wav, WER files, ceiling.json"
    )
    p.add_argument(
        "--prefixes",
        default="1,2,4,all",
        help="codebook prefixes Q' to decode (comma list; all: Q)",
    )
    p.add_argument("--codec-dir", default=None, help="the codec, if the checkpoint has none")
    p.add_argument("--tokens", default=None, help="tokens.txt if the checkpoint has no symbols")
    p.add_argument("--max-items", type=int, default=None, help="the first N items only")
    p.add_argument("--asr", default="faster-whisper", choices=sorted(ASR_BACKENDS))
    p.add_argument("--asr-path", default=None, help="model directory or hub name of the backend")
    p.add_argument(
        "--language", default=None, help="ISO 639-1 code (default: from the list, or en)"
    )
    p.add_argument("--seed", type=int, default=0, help="NAR sampling (greedy: no effect)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda")


@subcommand(
    "ceiling",
    "WER if the AR were perfect: codec codebook prefixes and the ground-truth first codebook "
    "completed by the model's NAR",
    _configure_ceiling,
)
def run_ceiling(args: argparse.Namespace) -> int:
    from valle.eval.asr import build_asr
    from valle.eval.ceiling import ceiling_waves, format_table, parse_prefixes, score_systems
    from valle.eval.files import write_json
    from valle.eval.protocols import read_protocol
    from valle.inference import Synthesizer

    items = read_protocol(args.list)[: args.max_items]
    if not items:
        raise BenchError(f"{args.list} has no items")
    languages = {i.language for i in items if i.language}
    if args.language is None and len(languages) > 1:
        raise BenchError(f"the list mixes languages {sorted(languages)}; pass --language")
    language = args.language or (languages.pop() if languages else "en")
    cuts = _load_cuts(args.cuts)
    synth = Synthesizer.from_checkpoint(
        args.checkpoint, codec=args.codec_dir, tokens=args.tokens, device=args.device,
        max_text_tokens=None,
    )  # fmt: skip
    prefixes = parse_prefixes(args.prefixes, int(getattr(synth.codec, "num_codebooks", 1)))
    out_dir = Path(args.out_dir)
    systems = ceiling_waves(synth, items, cuts, out_dir, prefixes, seed=args.seed)
    score_systems(systems, items, build_asr(args.asr, args.asr_path, args.device), language,
                  args.asr)  # fmt: skip
    table = format_table(systems)
    print(table)
    write_json(out_dir / "ceiling.json", {
        "checkpoint": str(args.checkpoint), "list": str(args.list), "asr": args.asr,
        "language": language, "systems": [s.as_row() for s in systems],
    })  # fmt: skip
    print(f"wrote {out_dir / 'ceiling.json'}")
    return 0


# --------------------------------------------------------------------------- aligned-probe
def _configure_aligned_probe(p: argparse.ArgumentParser) -> None:
    from valle.eval.asr import ASR_BACKENDS

    p.add_argument("--cuts-train", required=True, help="aligned train cuts (custom durations)")
    p.add_argument("--cuts-test", required=True, help="aligned test cuts (held-out speakers)")
    p.add_argument("--tokens", required=True, help="tokens.txt of the phonemes")
    p.add_argument("--codec-dir", required=True, help="the codec of the cuts' codes")
    p.add_argument("--language", default="en", help="ISO 639-1 code of the cuts to use")
    p.add_argument("--minutes", type=float, default=8.0, help="training wall-clock budget")
    p.add_argument("--max-steps", type=int, default=None, help="training step budget")
    p.add_argument("--max-items", type=int, default=24, help="the first N test cuts decoded")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latent-weight", type=float, default=1.0,
                   help="weight of the latent L1+L2 loss; 0: no latent head")  # fmt: skip
    p.add_argument("--asr", default="faster-whisper", choices=sorted(ASR_BACKENDS))
    p.add_argument("--asr-path", default=None, help="model directory or hub name of the backend")
    p.add_argument(
        "--out-dir", required=True, help="writes <system>/<id>.wav, WER rows, aligned_probe.json"
    )


@subcommand(
    "aligned-probe",
    "learnability of data + codec: WER of a small conv net trained for minutes from "
    "frame-aligned phonemes (reference durations) to codes and latent",
    _configure_aligned_probe,
)
def run_aligned_probe(args: argparse.Namespace) -> int:
    import time

    import torch

    from valle.eval.aligned_probe import load_aligned, probe_waves, train_probe
    from valle.eval.asr import build_asr
    from valle.eval.audio import write_wave
    from valle.eval.cuts import load_cuts
    from valle.eval.files import write_json
    from valle.eval.wer import score_corpus
    from valle.inference import codec_from_dir
    from valle.text import SymbolTable

    if args.minutes <= 0 and args.max_steps is None:
        raise BenchError("--minutes must be > 0 (or give --max-steps)")
    if args.max_items < 1 or (args.max_steps is not None and args.max_steps < 1):
        raise BenchError("--max-items and --max-steps must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    codec = codec_from_dir(args.codec_dir)
    symbols = SymbolTable.from_file(args.tokens)
    train = load_aligned(load_cuts(args.cuts_train, args.language), symbols, codec)
    test = load_aligned(load_cuts(args.cuts_test, args.language), symbols, codec)
    if not train or not test:
        raise BenchError(f"no {args.language!r} cuts in --cuts-train or --cuts-test")
    logger.info("%d train, %d test %s utterances", len(train), len(test), args.language)
    net, log = train_probe(
        train, len(symbols), int(codec.codebook_size),
        minutes=args.minutes if args.minutes > 0 else None, max_steps=args.max_steps,
        latent_weight=args.latent_weight, seed=args.seed,
    )  # fmt: skip
    items = test[: args.max_items]
    systems = probe_waves(net, items, codec, speaker_pool=test, seed=args.seed)
    out_dir = Path(args.out_dir)
    asr = build_asr(args.asr, args.asr_path)
    rows: list[dict[str, Any]] = []
    ids, refs = [u.id for u in items], [u.text for u in items]
    for name, waves in systems.items():
        directory = out_dir / name.replace(" ", "_")
        for u, w in zip(items, waves, strict=True):
            write_wave(directory / f"{u.id}.wav", w.numpy(), codec.sample_rate)
        hyps: list[str] = []
        for start in range(0, len(waves), 8):
            chunk = [w.numpy() for w in waves[start : start + 8]]
            hyps += asr.transcribe(chunk, codec.sample_rate, args.language)
        errors = score_corpus(ids, refs, hyps, args.language)
        errors.write_csv(directory / "wer_rows.csv")
        rows.append({"system": name, "wer": errors.error_rate, "items": len(ids),
                     "directory": str(directory)})  # fmt: skip
    lines = ["| system | WER | items |", "|---|---|---|"]
    lines += [f"| {r['system']} | {100 * r['wer']:.1f}% | {r['items']} |" for r in rows]
    print("\n".join(lines))
    print(f"{log.steps} steps in {log.seconds:.0f} s; final " +
          " ".join(f"{k} {v:.3f}" for k, v in log.final.items()))  # fmt: skip
    summary = {
        "systems": rows, "train": log.as_dict(), "wall_seconds": round(time.monotonic() - t0, 1),
        "train_utterances": len(train), "test_utterances": len(test),
        "settings": {k: v for k, v in vars(args).items() if not k.startswith("_")},
    }  # fmt: skip
    print(f"wrote {write_json(out_dir / 'aligned_probe.json', summary)}")
    return 0


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    for mod in SUBCOMMAND_MODULES:
        importlib.import_module(mod)
    parser = argparse.ArgumentParser(prog="valle-bench", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for sc in SUBCOMMANDS.values():
        sp = sub.add_parser(sc.name, help=sc.help, description=sc.help)
        sc.configure(sp)
        sp.set_defaults(_run=sc.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args))
    except (BenchError, ValueError, FileNotFoundError) as e:
        print(f"valle-bench {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
