"""Cross-lingual zero-shot test lists (VALL-E X Sec 4): a prompt in one language, a target
text in another.

Usage (after stage 7 wrote the per-language lists of the held-out voices)::

    python -m valle.eval.cross_lingual --prompts decode/lists/cross_zh.jsonl \
        --targets decode/lists/cross_en.jsonl --cuts data/tokenized/mini_cuts_test.jsonl.gz \
        --out-dir decode/xl_zh_en

It writes ``list.jsonl`` (a protocol list: the prompt fields of a ``--prompts`` item, the
target text of a ``--targets`` item, ``language`` the target's, ``speaker`` the prompt's),
``prompts/<id>.wav`` (each prompt cut from its cut) and ``jobs.jsonl`` for
``valle-infer --jobs`` with ``prompt_language`` set. Score WER against ``target_text`` in the
target language and SIM to the prompt only (``valle-bench sim --no-original``: nobody said
the target text in the prompt's voice).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from valle.eval.protocols import TestItem, load_prompt_audio, read_protocol, write_protocol

__all__ = ["pair_items", "write_jobs", "main"]


def _language(items: Sequence[TestItem], what: str) -> str:
    langs = {i.language or "en" for i in items}
    if len(langs) != 1:
        raise ValueError(f"the {what} list must hold one language, got {sorted(langs)}")
    return langs.pop()


def pair_items(
    prompts: Sequence[TestItem],
    targets: Sequence[TestItem],
    *,
    seed: int = 0,
    max_items: int | None = None,
) -> tuple[list[TestItem], str]:
    """Cross-lingual items: each target item's text spoken in the voice of a prompt item (of
    another language), prompts drawn in a seeded order, cycling when fewer than the targets.

    Returns the items and the prompts' language.
    """
    if not prompts or not targets:
        raise ValueError("need at least one prompt item and one target item")
    src, dst = _language(prompts, "prompt"), _language(targets, "target")
    if src == dst:
        raise ValueError(f"prompt and target lists are both {src!r}: not cross-lingual")
    order = list(prompts)
    random.Random(seed).shuffle(order)
    chosen = list(targets)[: max_items if max_items is not None else len(targets)]
    out = []
    for k, target in enumerate(chosen):
        p = order[k % len(order)]
        out.append(
            dataclasses.replace(
                target,
                id=f"xl-{src}-{dst}-{k:04d}",
                setting="cross",
                speaker=p.speaker,
                text=target.target_text,
                prompt_cut_id=p.prompt_cut_id,
                prompt_recording_id=p.prompt_recording_id,
                prompt_start=p.prompt_start,
                prompt_duration=p.prompt_duration,
                prompt_text=p.prompt_text,
                prompt_text_source=p.prompt_text_source,
            )
        )
    return out, src


def write_jobs(items: Sequence[TestItem], prompt_language: str, cuts: Any, out_dir: Path) -> Path:
    """``out_dir/prompts/<id>.wav`` and ``out_dir/jobs.jsonl`` for ``valle-infer --jobs``."""
    import soundfile as sf

    prompt_dir = out_dir / "prompts"
    prompt_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for item in items:
        wave, sr = load_prompt_audio(item, cuts)
        wav = prompt_dir / f"{item.id}.wav"
        sf.write(wav, wave, sr)
        lines.append(
            json.dumps(
                {
                    "id": item.id,
                    "text": item.target_text,
                    "prompt_wav": str(wav),
                    "prompt_text": item.prompt_text,
                    "language": item.language or "en",
                    "prompt_language": prompt_language,
                },
                ensure_ascii=False,
            )
        )
    jobs = out_dir / "jobs.jsonl"
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return jobs


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", required=True, help="protocol list of the prompts' language")
    p.add_argument("--targets", required=True, help="protocol list of the target language")
    p.add_argument("--cuts", required=True, help="cuts manifest holding the prompts' audio")
    p.add_argument("--out-dir", required=True, help="list.jsonl, jobs.jsonl, prompts/")
    p.add_argument("--seed", type=int, default=0, help="order in which prompts are drawn")
    p.add_argument("--max-items", type=int, default=None, help="items (default: every target)")
    args = p.parse_args(argv)
    from lhotse import CutSet

    try:
        items, src = pair_items(
            read_protocol(args.prompts), read_protocol(args.targets), seed=args.seed,
            max_items=args.max_items,
        )  # fmt: skip
    except ValueError as e:
        print(f"cross_lingual: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_protocol(items, out / "list.jsonl")
    jobs = write_jobs(items, src, CutSet.from_file(args.cuts).to_eager(), out)
    print(f"wrote {len(items)} items ({src} prompt -> {items[0].language} text): {jobs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
