#!/usr/bin/env python3
"""Write RESULTS.md from the tables of stage 8 (valle.eval.results_md does the rendering).

Usage: python local/write_results.py --score-dir exp/valle_tiny/score \
           --decode-dir exp/valle_tiny/decode --stage-times exp/valle_tiny/stage_times.tsv \
           --command "./run.sh --stage 7 --stop-stage 8" --out RESULTS.md [--title ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
log = logging.getLogger("write_results")


def speed_fact(index: list[dict]) -> str | None:
    """How the speed columns were measured, from the speed summary stage 8 wrote (or None)."""
    from valle.eval.files import read_json

    path = next((e["speed"] for e in index if e.get("speed")), None)
    if path is None or not Path(path).is_file():
        return None
    obj = read_json(path)
    s = obj[0] if isinstance(obj, list) else obj
    text = (
        f"valle-bench speed on {s.get('device', '?')} with {s.get('threads', '?')} thread(s): "
        f"batch {s.get('batch', '?')}, {s.get('ar_steps', '?')} AR steps; memory: "
        f"{s.get('memory', '?')}"
    )
    tr = s.get("train")
    if tr:
        text += (
            f"; training {tr['steps']} AdamW steps of {tr['batch']} x {tr['frames']} code frames "
            f"({tr['ms_step']:.0f} ms/step)"
        )
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--score-dir", type=Path, required=True)
    p.add_argument("--decode-dir", type=Path, required=True)
    p.add_argument("--stage-times", type=Path, required=True)
    p.add_argument("--command", required=True, help="the command that made the results")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--title", default="Mini recipe results")
    p.add_argument("--checkpoint", default=None, help="shown in the facts")
    p.add_argument("--fact", action="append", default=[], help="'key: value' line (repeatable)")
    args = p.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from valle.eval.files import read_json
    from valle.eval.output_lengths import output_lengths
    from valle.eval.report import ResultsTable, load_summaries
    from valle.eval.results_md import (
        ResultSection,
        git_commit,
        hardware_line,
        read_stage_times,
        render_results_md,
        write_results_md,
    )

    index_file = args.score_dir / "index.json"
    if not index_file.is_file():
        sys.exit(f"write_results.py: {index_file} not found; run stage 8 (score) first")
    index = read_json(index_file)
    sections = [
        ResultSection(
            setting=e["setting"],
            language=e["language"],
            table=ResultsTable.from_summaries(load_summaries(e["summaries"])),
            items=int(e["items"]),
            prompt_seconds=float(e["prompt_seconds"]),
            shortest_prompt=e.get("shortest_prompt"),
            png=Path(e["png"]).resolve() if Path(e["png"]).is_file() else None,
        )
        for e in index
    ]
    facts: dict[str, str] = {}
    if args.checkpoint:
        facts["checkpoint"] = args.checkpoint
    if index:
        facts["ASR / speaker encoder"] = f"{index[0]['asr']} / {index[0]['encoder']}"
    info_file = args.decode_dir / "decode_info.json"
    if info_file.is_file():
        for setting, f in read_json(info_file).get("settings", {}).items():
            facts[f"decoding {setting}"] = (
                f"{f['items']} items, {f['speech_seconds']:.1f} s of speech in "
                f"{f['synthesis_seconds']:.1f} s (RTF {f['rtf']:.3f})"
            )
    for e in index:  # issue 9: no empty outputs, lengths within 25% of the references
        lst = args.decode_dir / "lists" / f"{e['setting']}_{e['language']}.jsonl"
        if lst.is_file():
            try:
                lengths = output_lengths(lst, args.decode_dir / e["setting"])
            except ValueError as err:
                log.warning("output lengths of %s: %s", lst, err)
                continue
            facts[f"output length {e['setting']} {e['language']}"] = lengths.describe()
    speed_note = speed_fact(index)
    if speed_note:
        facts["speed and cost"] = speed_note
    for line in args.fact:
        key, _, value = line.partition(":")
        facts[key.strip()] = value.strip()
    notes = [
        "Rows: the test recordings (ground truth), the same through the codec (encode + decode: "
        "the ceiling of a codec language model) and the model.",
        "WER is sum(S+D+I)/sum(reference words) over the list; Chinese and Japanese are scored "
        "by characters (CER) in the same column: Chinese with a simplified-character Whisper "
        "prompt, Japanese on katakana readings (pyopenjtalk) of reference and transcript.",
        "Whisper falls back to sampling on audio it cannot decode, so the WER of unintelligible "
        "outputs varies between scoring runs: by a few points, or by hundreds where the "
        "sampling runs away on one item (its long transcript counts as insertions); "
        "intelligible speech scores stably.",
        "Continuation: the model outputs only the continuation, so every row is scored on "
        "the part after the prompt window: the ground truth and codec rows are cut at the "
        "window's end (`valle-bench wer/sim --after-prompt`), all rows are scored "
        "against the words after the prompt and compared with the prompt on that part only "
        "(MELLE's continuation SIM; VALL-E 2 scores whole utterances, prompt included). "
        "Cross-sentence rows are whole utterances against the whole transcript.",
        "SIM-o: speaker similarity of the output to the original prompt; SIM-r: to the prompt "
        "passed through the codec; SIM-utt: to the original target utterance.",
        "Prompt windows and transcripts: with word times (word alignments, else the aligner's "
        "phoneme durations: English cuts of data/align) the window ends at a word boundary, "
        "the start of the first word not ended within the prompt seconds, so prompt and "
        "continuation hold whole words (hence prompts shorter than the nominal length); "
        "without them (Chinese and Japanese characters) it is the nominal length and holds the "
        "words whose midpoint lies in it, by a time-proportional split.",
    ]
    if speed_note:
        notes.append(
            "Speed and cost columns (model row only; the same measurement in every table): RTF = "
            "seconds of AR + NAR compute per second of speech at batch 1 (codec excluded); AR "
            "ms/step = one KV-cached decoder step; train tokens/s = code frames per second of "
            "AdamW training steps (forward + backward + step) on a random batch; peak mem = "
            "memory growth during decoding / training (see 'speed and cost' above). Random "
            "inputs, so the figures depend on the model's size, not on what it learned."
        )
    text = render_results_md(
        sections,
        title=args.title,
        command=args.command,
        commit=git_commit(REPO),
        hardware=hardware_line(),
        stage_times=read_stage_times(args.stage_times),
        facts=facts,
        notes=notes,
        base_dir=args.out.resolve().parent,
    )
    write_results_md(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
