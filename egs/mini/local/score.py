#!/usr/bin/env python3
"""Stage 8 (score): WER/CER and speaker similarity of three systems in both settings.

Usage: python local/score.py --decode-dir exp/valle_tiny/decode \
           --cuts data/tokenized/mini_cuts_test.jsonl.gz --score-dir exp/valle_tiny/score \
           [--asr faster-whisper --asr-path DIR] [--encoder resemblyzer] [--model-name NAME] \
           [--checkpoint exp/valle_tiny/nar/model.pt --codec-dir data/tokenized]

Reads what local/decode.py wrote. For every list <decode-dir>/lists/<S>_<L>.jsonl (setting S,
language L) it scores, with `valle-bench wer` and `valle-bench sim` run in this process (the
ASR language comes from the list: WER for en, CER for zh and ja):

  ground truth         the test recordings (--audio-from-cuts)
  codec resynthesis    <S>/resynth/<id>.wav (ground truth encoded and decoded by the codec)
  the model            <S>/<id>.wav

For cross the rows are scored against the full transcript. For cont the model's output is the
continuation only, so every row is scored on what follows the prompt window: the ground truth
and its resynthesis are cut at the end of the prompt window (`--after-prompt`) and all three
rows are scored against the words after the prompt (target_text) and compared with the prompt
on that part alone (MELLE's continuation SIM; VALL-E 2 instead scores whole utterances, prompt
included, in both rows, which credits the system with the prompt's own audio).

SIM-o compares each output with its prompt, SIM-r with the prompt through the codec
(<S>/resynth/prompts), SIM-utt with the original utterance. Then `valle-bench report` writes
<score-dir>/<S>_<L>.{csv,md,png}, and <score-dir>/index.json lists the tables for RESULTS.md.

Speed and cost (with --checkpoint): before scoring, `valle-bench speed --checkpoint` measures the
decoded model itself at batch 1 (short settings, --speed-threads threads): RTF, AR ms/step with
the KV cache, training tokens/s (AdamW steps on a random batch) and peak memory, written to
<score-dir>/speed/speed_summary.json under the model's row name, so every table gets these
columns in the model's row (ground truth and codec rows leave them blank).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("score")


def load_models_once() -> None:
    """Keep the ASR and speaker models loaded between the valle-bench calls of this process
    (each call would load them again): the backend factories are memoised by (path, device)."""
    from valle.eval import asr, similarity

    for registry in (asr.ASR_BACKENDS, similarity.SPEAKER_ENCODERS):
        for name, factory in list(registry.items()):
            registry[name] = functools.lru_cache(maxsize=None)(factory)  # type: ignore[assignment]


CACHE_VERSION = 2  # bump when the scoring of ground truth or resynthesis changes


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (wavs and manifests here are a few MB at most)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def score_key(*parts: Any) -> str:
    """A content key over JSON-able parts (settings, file digests)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def cached_scores(cache_dir: Path | None, key: str, out: Path, run: Any) -> bool:
    """Fill ``out`` from ``cache_dir/key`` when present, else ``run()`` and store ``out`` there.

    Used for the ground-truth and codec-resynthesis rows, which depend on the data, the codec
    and the scorers but not on the model: a new model's stage 8 then scores only the model.
    Returns True on a cache hit. The cache entry is written through a temp folder and a rename,
    so an interrupted run never leaves a partial entry.
    """
    import shutil
    import tempfile

    if cache_dir is None:
        run()
        return False
    entry = cache_dir / key
    if entry.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        for f in entry.iterdir():
            shutil.copy2(f, out / f.name)
        return True
    run()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{key}."))
    try:
        for f in out.iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
        tmp.rename(entry)
    except OSError:  # another run stored the same entry first
        shutil.rmtree(tmp, ignore_errors=True)
    return False


def bench(argv: list[str]) -> None:
    from valle.bin import bench as valle_bench

    log.info("valle-bench %s", " ".join(argv))
    rc = valle_bench.main(argv)
    if rc != 0:
        sys.exit(f"score.py: valle-bench {argv[0]} failed (exit {rc}); see the error above")


def score_system(
    name: str,
    source: list[str],
    ref_field: str,
    out: Path,
    list_file: Path,
    prompts: Path,
    cuts: Path,
    asr: list[str],
    enc: list[str],
    common: list[str],
) -> None:
    """WER and similarity of one system on one list, into ``out``."""
    bench(["wer", *source, "--system", name, "--out-dir", str(out), "--ref",
           str(list_file), "--ref-field", ref_field, *asr, *common])  # fmt: skip
    bench(["sim", *source, "--system", name, "--out-dir", str(out), "--list",
           str(list_file), "--cuts", str(cuts), "--prompt-resynth-dir",
           str(prompts), *enc, *common])  # fmt: skip


# Speed settings of stage 8: batch 1, short runs (seconds on the tiny model). The speech and
# prompt lengths follow the English test bounds of conf/decode.yaml (4-10 s, 3 s prompts).
SPEED_ARGS = ["--batch-sizes", "1", "--seconds", "4", "--prompt-seconds", "3", "--phonemes",
              "60", "--nocache-points", "2", "--train-steps", "2", "--train-warmup", "1",
              "--train-batch", "4", "--train-seconds", "4"]  # fmt: skip


def measure_speed(args: argparse.Namespace) -> Path | None:
    """`valle-bench speed --checkpoint` of the decoded model; its summary, or None when the
    benchmark failed (the quality tables are still written, without speed columns)."""
    import torch

    from valle.bin import bench as valle_bench

    out = args.score_dir / "speed"
    summary = out / "speed_summary.json"
    argv = ["speed", "--checkpoint", str(args.checkpoint), "--system", args.model_name,
            "--device", args.device, "--threads", str(args.speed_threads), *SPEED_ARGS,
            "--out", str(out / "speed.csv"), "--summary", str(summary)]  # fmt: skip
    if args.codec_dir is not None:
        argv += ["--codec-dir", str(args.codec_dir)]
    log.info("valle-bench %s", " ".join(argv))
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        rc = valle_bench.main(argv)
    finally:
        torch.set_num_threads(threads)  # the scoring models keep their threads
    if rc != 0 or not summary.is_file():
        log.warning("speed benchmark failed (exit %d): the tables get no speed columns", rc)
        return None
    log.info("speed and cost measured in %.1f s -> %s", time.perf_counter() - t0, summary)
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--decode-dir", type=Path, required=True)
    p.add_argument("--cuts", type=Path, required=True, help="the test cuts decode.py read")
    p.add_argument("--score-dir", type=Path, required=True)
    p.add_argument("--asr", default="faster-whisper", help="hubert-ctc | whisper | faster-whisper")
    p.add_argument("--asr-path", default=None, help="ASR model directory or hub name")
    p.add_argument("--encoder", default="resemblyzer", help="resemblyzer | wavlm-sv")
    p.add_argument("--encoder-path", default=None, help="speaker encoder directory or hub name")
    p.add_argument("--model-name", default="VALL-E", help="the model's row name")
    p.add_argument("--device", default="cpu")
    # ---- speed and cost of the model (valle-bench speed --checkpoint)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="the decoded model: measure its speed and cost (omit to skip)")  # fmt: skip
    p.add_argument("--codec-dir", type=Path, default=None,
                   help="codec.json directory (frame rate of the speed benchmark)")  # fmt: skip
    p.add_argument("--speed-threads", type=int, default=1, help="torch threads of the benchmark")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="reuse ground-truth and codec-resynthesis scores across runs "
                        "(keyed by the audio, lists, cuts and scorers)")  # fmt: skip
    args = p.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from valle.eval.files import write_json
    from valle.eval.protocols import read_protocol

    load_models_once()
    lists_dir = args.decode_dir / "lists"
    lists = sorted(
        f for f in lists_dir.glob("*_*.jsonl") if f.stem.split("_")[0] in ("cont", "cross")
    )
    if not lists:
        sys.exit(f"score.py: no <setting>_<language>.jsonl in {lists_dir}; run stage 7 first")
    if not args.cuts.is_file():
        sys.exit(f"score.py: test cuts {args.cuts} not found")
    asr = ["--asr", args.asr] + (["--asr-path", args.asr_path] if args.asr_path else [])
    enc = ["--encoder", args.encoder] + (
        ["--encoder-path", args.encoder_path] if args.encoder_path else []
    )
    common = ["--device", args.device, "--no-progress"]
    speed = measure_speed(args) if args.checkpoint is not None else None
    index: list[dict[str, Any]] = []
    for list_file in lists:
        setting, language = list_file.stem.split("_", 1)
        items = read_protocol(list_file)
        if not items:
            log.warning("%s is empty: skipped", list_file)
            continue
        hyp = args.decode_dir / setting
        prompts = hyp / "resynth" / "prompts"
        # continuation: every row on the part after the prompt (see the module docstring)
        cut = ["--after-prompt"] if setting == "cont" else []
        ref_field = "target_text" if setting == "cont" else "text"
        systems = [
            ("ground truth", ["--audio-from-cuts", str(args.cuts), *cut], ref_field),
            ("codec resynthesis", ["--hyp-dir", str(hyp / "resynth"), *cut], ref_field),
            (args.model_name, ["--hyp-dir", str(hyp)], ref_field),
        ]  # fmt: skip
        summaries = []
        t0 = time.perf_counter()
        for k, (name, source, ref_field) in enumerate(systems):
            out = args.score_dir / setting / language / f"system{k}"

            run = functools.partial(
                score_system, name, source, ref_field, out, list_file, prompts, args.cuts,
                asr, enc, common,
            )  # fmt: skip

            if k < 2:  # ground truth and resynthesis: the same for every model on this data
                audio = sorted(prompts.glob("*.wav"))
                if k == 1:
                    audio += sorted((hyp / "resynth").glob("*.wav"))
                key = score_key(CACHE_VERSION, name, ref_field, asr, enc, file_digest(list_file),
                                file_digest(args.cuts), [(a.name, file_digest(a)) for a in audio])  # fmt: skip
                if cached_scores(args.cache_dir, key, out, run):
                    log.info("%s %s %s: scores reused from the cache (%s)", setting, language,
                             name, key)  # fmt: skip
            else:
                run()
            summaries += [out / "wer_summary.json", out / "sim_summary.json"]
        if speed is not None:
            summaries.append(speed)  # the model's row gets the speed columns
        table = args.score_dir / f"{setting}_{language}"
        bench(["report", "--inputs", *map(str, summaries), "--out", str(table)])
        index.append(
            {
                "setting": setting,
                "language": language,
                "items": len(items),
                "prompt_seconds": max(i.prompt_duration for i in items),
                "shortest_prompt": min(i.prompt_duration for i in items),
                "table": str(table.with_suffix(".csv")),
                "markdown": str(table.with_suffix(".md")),
                "png": str(table.with_suffix(".png")),
                "summaries": [str(s) for s in summaries],
                "asr": args.asr,
                "encoder": args.encoder,
                "score_seconds": round(time.perf_counter() - t0, 1),
                "speed": str(speed) if speed is not None else None,
            }
        )
    write_json(args.score_dir / "index.json", index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
