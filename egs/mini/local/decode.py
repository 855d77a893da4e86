#!/usr/bin/env python3
"""Stage 7 (decode): zero-shot synthesis of the held-out test cuts in both settings.

Usage: python local/decode.py --config conf/decode.yaml \
           --cuts data/tokenized/mini_cuts_test.jsonl.gz \
           --checkpoint exp/valle_tiny/nar/model.pt --decode-dir exp/valle_tiny/decode \
           [--tokens data/tokens.txt] [--codec-dir data/tokenized] [--device cpu] \
           [--resynth-cache data/resynth_cache]

For every setting S (cont: the first seconds of the utterance and their transcript are the
prompt; cross: the first seconds of another utterance of the same speaker) and every language L
of the config, it writes under --decode-dir:

  lists/test_<L>.jsonl.gz           the test cuts of language L
  lists/<S>_<L>.jsonl               the test list of `valle-bench protocol` (bounds from the
                                    config), without items the model cannot say
  lists/<S>.jsonl                   all languages of S together
  <S>/<id>.wav                      the model's output (cont: the continuation only)
  <S>/resynth/<id>.wav              the ground truth through the codec (the "codec" row)
  <S>/resynth/prompts/<id>.wav      the prompt through the codec (SIM-r)
  decode_info.json                  items, seconds of speech and synthesis time per setting

With --resynth-cache the codec rows' waves are kept there by content (input samples and codec),
so decoding another model or seed on the same test cuts copies them instead of resynthesizing
(about 2 minutes of the mini recipe's stage 7 at one thread); the two settings share their
targets, so even a first run resynthesizes each target once.

Synthesis runs in batches of `batch_size` jobs through Synthesizer.synthesize_batch with one
generator seeded from `seed`, so a rerun writes the same waves.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("decode")

LANGUAGE_KEYS = {"prompt_seconds", "min_seconds", "max_seconds", "max_items"}


def load_config(path: Path) -> dict[str, Any]:
    """Read and check conf/decode.yaml (see its comments)."""
    if not path.is_file():
        sys.exit(f"decode.py: config {path} not found")
    cfg = yaml.safe_load(path.read_text()) or {}
    for key in ("seed", "batch_size", "settings", "languages"):
        if key not in cfg:
            sys.exit(f"decode.py: {path} lacks '{key}' (see egs/mini/conf/decode.yaml)")
    bad = [s for s in cfg["settings"] if s not in ("cont", "cross")]
    if bad:
        sys.exit(f"decode.py: {path}: unknown settings {bad}; use cont and/or cross")
    for lang, bounds in cfg["languages"].items():
        missing = LANGUAGE_KEYS - set(bounds or {})
        if missing:
            sys.exit(f"decode.py: {path}: languages.{lang} lacks {sorted(missing)}")
    return cfg


def write_cuts_atomic(cuts: Any, path: Path) -> None:
    from valle.data.manifests import save_cuts_atomic

    save_cuts_atomic(cuts, path)


def make_lists(cfg: dict[str, Any], cuts_path: Path, lists_dir: Path) -> dict[str, list[Path]]:
    """Per-language test lists through `valle-bench protocol`; returns setting -> list files."""
    from lhotse import CutSet
    from lhotse.utils import fastcopy

    from valle.bin import bench
    from valle.data.tokenize import supervision_language

    lists_dir.mkdir(parents=True, exist_ok=True)
    cuts = CutSet.from_file(cuts_path).to_eager()
    by_lang: dict[str, list[Any]] = {}
    for c in cuts:
        # lhotse recipes write language names ("English"): the lists carry the codes ("en")
        lang = supervision_language(c.supervisions[0].language if c.supervisions else None, "en")
        c = c.map_supervisions(lambda s, code=lang: fastcopy(s, language=code))
        by_lang.setdefault(lang, []).append(c)
    ignored = sorted(set(by_lang) - set(cfg["languages"]))
    if ignored:
        log.warning("test cuts in languages %s have no bounds in the config: left out", ignored)
    out: dict[str, list[Path]] = {s: [] for s in cfg["settings"]}
    for lang, bounds in cfg["languages"].items():
        lang_cuts = by_lang.get(lang, [])
        durations = [c.duration for c in lang_cuts]
        n_in = sum(bounds["min_seconds"] <= d <= bounds["max_seconds"] for d in durations)
        log.info(
            "%s: %d test cuts (%.1f-%.1f s), %d within %.1f-%.1f s",
            lang,
            len(lang_cuts),
            min(durations, default=0.0),
            max(durations, default=0.0),
            n_in,
            bounds["min_seconds"],
            bounds["max_seconds"],
        )
        if n_in == 0:
            log.warning("%s: no test cut within the bounds: language skipped", lang)
            continue
        lang_file = lists_dir / f"test_{lang}.jsonl.gz"
        write_cuts_atomic(CutSet.from_cuts(lang_cuts), lang_file)
        for setting in cfg["settings"]:
            dest = lists_dir / f"{setting}_{lang}.jsonl"
            rc = bench.main(
                [
                    "protocol",
                    "--cuts", str(lang_file),
                    "--setting", setting,
                    "--seed", str(cfg["seed"]),
                    "--out", str(dest),
                    "--prompt-seconds", str(bounds["prompt_seconds"]),
                    "--min-seconds", str(bounds["min_seconds"]),
                    "--max-seconds", str(bounds["max_seconds"]),
                ]
                + ([] if bounds["max_items"] is None else ["--max-items", str(bounds["max_items"])])
            )  # fmt: skip
            if rc != 0:
                log.warning("%s %s: valle-bench protocol made no list (see above): skipped",
                            setting, lang)  # fmt: skip
                dest.unlink(missing_ok=True)
                continue
            out[setting].append(dest)
    return out


def sayable(synth: Any, item: Any) -> str | None:
    """Why the model cannot synthesize ``item`` (None: it can)."""
    from valle.text import UnknownSymbolError

    if not item.prompt_text.strip():
        return "no word inside the prompt window"
    if not item.target_text.strip():
        return "no word after the prompt"
    try:
        synth.text_ids(item.target_text, item.prompt_text, item.language or "en")
    except (UnknownSymbolError, ValueError) as e:
        return str(e).splitlines()[0]
    return None


def filter_lists(synth: Any, list_files: list[Path]) -> list[Any]:
    """Drop the items the model cannot say from each list (rewritten); returns the kept items."""
    from valle.eval.protocols import read_protocol, write_protocol

    kept_all = []
    for path in list_files:
        items = read_protocol(path)
        kept = []
        for item in items:
            why = sayable(synth, item)
            if why is None:
                kept.append(item)
            else:
                log.warning("%s: item %s left out: %s", path.name, item.id, why)
        write_protocol(kept, path)
        kept_all += kept
    return kept_all


def synthesize(synth: Any, items: list[Any], cuts: Any, out_dir: Path, cfg: dict) -> dict:
    """The model's outputs <out_dir>/<id>.wav; returns timing facts."""
    import torch
    from tqdm import tqdm

    from valle.eval.protocols import load_prompt_audio
    from valle.inference import SynthesisJob
    from valle.inference.wavfile import write_wav

    # similar lengths in a batch: fewer AR steps spent on rows that have ended
    order = sorted(items, key=lambda i: (i.target_duration, i.id))
    jobs = []
    for item in order:
        wave, sr = load_prompt_audio(item, cuts)
        jobs.append(
            SynthesisJob(
                text=item.target_text,
                prompt_wav=wave,
                prompt_text=item.prompt_text,
                language=item.language or "en",
                prompt_sample_rate=sr,
                id=item.id,
            )
        )
    generator = torch.Generator(device=synth.device).manual_seed(int(cfg["seed"]))
    size = int(cfg["batch_size"])
    speech = 0.0
    start = time.perf_counter()
    with tqdm(total=len(jobs), desc=f"decode {out_dir.name}", unit="utt") as bar:
        for b in range(0, len(jobs), size):
            chunk = jobs[b : b + size]
            for job, (wave, sr) in zip(
                chunk, synth.synthesize_batch(chunk, generator=generator), strict=True
            ):
                write_wav(out_dir / f"{job.id}.wav", wave, sr)
                speech += len(wave) / sr
            bar.update(len(chunk))
    took = time.perf_counter() - start
    return {
        "items": len(jobs),
        "speech_seconds": round(speech, 3),
        "synthesis_seconds": round(took, 3),
        "rtf": round(took / max(speech, 1e-9), 4),
    }


def main() -> int:
    from valle.inference.arguments import add_model_overrides
    from valle.inference.quantize import QUANTIZE_MODES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="conf/decode.yaml")
    p.add_argument("--cuts", type=Path, required=True, help="test cuts (jsonl.gz)")
    p.add_argument("--checkpoint", type=Path, required=True, help="<exp>/nar/model.pt")
    p.add_argument("--decode-dir", type=Path, required=True)
    p.add_argument("--tokens", default=None, help="tokens.txt (default: the checkpoint's)")
    p.add_argument("--codec-dir", default=None, help="codec dir (default: the checkpoint's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default="none",
        help="weight precision at inference (valle.inference.quantize; recorded)",
    )
    p.add_argument(
        "--aligner",
        type=Path,
        default=None,
        help="trained aligner of the model's data (data/align/aligner.pt): the prompts' frames "
        "per transcript token, for a model that reads them (vallr, ralle, melle_aligned; "
        "without it their prompts are split uniformly); unused (logged) for other models",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        help="speaking-rate factor for a model with prosody control (vallr, ralle, "
        "melle_aligned): 0.9 slower, 1.1 faster than its own durations (recorded)",
    )
    p.add_argument(
        "--resynth-cache",
        type=Path,
        default=None,
        help="folder of codec resynthesis kept by content (valle.eval.resynth_files.ResynthCache): "
        "the codec row of a decoding is copied from it when the same codec resynthesized the "
        "same audio before (run.sh: $data_dir/resynth_cache)",
    )
    add_model_overrides(p, "ar.stop.threshold=0.9", "recorded in decode_info.json")
    args = p.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    import torch
    from lhotse import CutSet

    from valle.eval.files import write_json, write_jsonl
    from valle.eval.resynth_files import ResynthCache, protocol_jobs, write_resynthesized
    from valle.inference import PromptTrim, Synthesizer

    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    if not args.cuts.is_file():
        sys.exit(f"decode.py: test cuts {args.cuts} not found; run stage 4 first")
    if not args.checkpoint.is_file():
        sys.exit(f"decode.py: checkpoint {args.checkpoint} not found; run stages 5-6 first")
    cfg = load_config(args.config)
    lists_dir = args.decode_dir / "lists"
    list_files = make_lists(cfg, args.cuts, lists_dir)
    if not any(list_files.values()):
        sys.exit("decode.py: no test list could be made; check the bounds in " + str(args.config))
    # the protocol already cut the prompts to the configured length: no further trimming
    synth = Synthesizer.from_checkpoint(
        args.checkpoint,
        codec=args.codec_dir,
        tokens=args.tokens,
        device=args.device,
        prompt_trim=PromptTrim(seconds=None),
        model_overrides=args.model_overrides,
        quantize=args.quantize,
        speed=args.speed,
    )
    info: dict[str, Any] = {"checkpoint": str(args.checkpoint), "settings": {}}
    if args.aligner is not None:
        if not args.aligner.is_file():
            sys.exit(f"decode.py: --aligner {args.aligner} not found (prepare.sh --align true)")
        if "prompt_durations" in inspect.signature(synth.model.generate).parameters:
            # the same model, symbols and codec; its prompts now aligned as in training
            synth = Synthesizer(synth.model, synth.symbols, synth.codec, device=args.device,
                                prompt_trim=PromptTrim(seconds=None), aligner=args.aligner,
                                speed=args.speed)  # fmt: skip
            info["prompt_aligner"] = str(args.aligner)
        else:
            log.info("--aligner %s unused: this model reads no prompt durations", args.aligner)
    cuts = CutSet.from_file(args.cuts).to_eager()
    if args.model_overrides:
        info["model_overrides"] = list(args.model_overrides)
    if args.quantize != "none":
        info["quantize"] = args.quantize
    if args.speed is not None:
        info["speed"] = args.speed
    cache = None if args.resynth_cache is None else ResynthCache(args.resynth_cache, synth.codec)
    for setting, files in list_files.items():
        items = filter_lists(synth, files)
        if not items:
            log.warning("%s: no item left to decode", setting)
            continue
        write_jsonl(lists_dir / f"{setting}.jsonl", (i.as_dict() for i in items))
        out_dir = args.decode_dir / setting
        facts = synthesize(synth, items, cuts, out_dir, cfg)
        t0 = time.perf_counter()
        jobs = protocol_jobs(items, cuts, out_dir / "resynth")  # targets and prompts
        hits = cache.hits if cache is not None else 0
        write_resynthesized(synth.codec, jobs, total=2 * len(items), cache=cache)
        facts["resynth_seconds"] = round(time.perf_counter() - t0, 3)
        if cache is not None:
            facts["resynth_cached"] = cache.hits - hits
        facts["languages"] = sorted({i.language or "en" for i in items})
        info["settings"][setting] = facts
        log.info("%s: %s", setting, json.dumps(facts))
    write_json(args.decode_dir / "decode_info.json", info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
