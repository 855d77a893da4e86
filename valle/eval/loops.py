"""Does AR decoding get stuck? The loop test of ``valle-bench loops``.

Shape legend: B batch, S text tokens, P prompt frames, T frames, Q codebooks, N AR steps.

VALL-E 2 (Sec 1, 3.2) names the failure its repetition-aware sampling is for: decoding with a
small top-p (greedy at the limit) "may cause an infinite loop issue", one code or a short
pattern repeated until the length bound. This measures it on test utterances with the
continuation protocol (as ``valle-bench diagnose`` decodes them): the text is the whole
transcript, the prompt the first ``prompt_seconds`` of the utterance's codes, and the AR
continues it with each sampler asked for (one seeded generator per sampler). An output

- **hits the cap** when it made the length bound's steps without ending (no EOS), i.e.
  ``ceil(ceil(max_len_ratio * S) / G)`` steps (:func:`valle.ar.generate.max_new_steps`);
- **repeats** when one first-codebook code runs for more than ``run_seconds`` (1 s) in a row,
  counted in frames with the codec's frame rate (the checkpoint's codec facts).

The table gives, per sampler, the share of outputs that hit the cap, that repeat, that do
either, the mean longest run (s) and the mean length over the reference continuation. The
samplers are the kinds of the sampler registry (:data:`valle.sampling.SAMPLER_KINDS`, built by
:func:`valle.sampling.build_sampler` with the numbers given: ``greedy``, ``sample``,
``repetition_aware``), ``ras`` (short for ``repetition_aware``, with ``top_p`` 0 by default:
greedy first choices that fall back to random sampling when a code fills more than
``threshold`` of the last ``window`` codes, so greedy and ras differ in RAS alone) and
``default`` (the sampler the model's config names). Only the AR runs: the NAR cannot change the
first codebook. The frame rate is the model's (:func:`valle.eval.trained_model.model_frame_rate`),
else the cuts' code frame rate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from valle.ar.generate import max_new_steps

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SAMPLER",
    "LoopRow",
    "SAMPLER_ALIASES",
    "decode_loops",
    "format_loop_table",
    "longest_run",
    "loop_summary",
    "loops_checkpoint",
    "make_sampler",
    "sampler_names",
]

#: The loop test's names beside the registry's kinds (valle.sampling.SAMPLER_KINDS): the kind
#: and its numbers unless given (``ras``: RAS with a greedy nucleus, so greedy vs ras isolates
#: RAS).
SAMPLER_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "ras": ("repetition_aware", {"top_p": 0.0}),
}
DEFAULT_SAMPLER = "default"  # the sampler the model's config names


def sampler_names() -> tuple[str, ...]:
    """Every name :func:`make_sampler` accepts."""
    from valle.sampling import SAMPLER_KINDS

    return (*SAMPLER_KINDS, *SAMPLER_ALIASES, DEFAULT_SAMPLER)


@dataclass(frozen=True)
class LoopRow:
    """One decoded continuation (lengths in frames)."""

    id: str
    sampler: str
    frames: int  # generated frames
    limit: int  # the length bound in frames (steps * G)
    reference: int  # the utterance's frames after the prompt
    longest_run: int  # frames of the longest run of one first-codebook code
    hit_cap: bool  # the AR made the bound's steps without ending


def longest_run(codes: Tensor) -> int:
    """Length of the longest run of equal consecutive values of a 1-D sequence (0 if empty)."""
    if codes.numel() == 0:
        return 0
    change = torch.ones(codes.numel(), dtype=torch.bool)
    change[1:] = codes.reshape(-1)[1:] != codes.reshape(-1)[:-1]  # (T,) a new run starts
    starts = torch.nonzero(change).flatten().tolist() + [codes.numel()]
    return max(b - a for a, b in zip(starts[:-1], starts[1:], strict=True))


def make_sampler(name: str, model: Any, *, top_p: float | None = None, window: int = 10,
                 threshold: float = 0.1) -> Any:  # fmt: skip
    """The sampler ``name`` (one of :func:`sampler_names`) for ``model``: the model's own for
    ``default``, else the registry's kind (an alias's kind, with its numbers unless given)
    built with the numbers it reads (``top_p`` None: the kind's or the alias's own)."""
    from valle.sampling import build_sampler

    if name == DEFAULT_SAMPLER:
        return model.ar.default_sampler
    kind, own = SAMPLER_ALIASES.get(name, (name, {}))
    given = {"top_p": top_p, "window": window, "threshold": threshold}
    return build_sampler(kind, **{**own, **{k: v for k, v in given.items() if v is not None}})


def _pad(rows: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    from valle.data.batch import pad_rows

    return pad_rows(list(rows), 0)


@torch.no_grad()
def decode_loops(
    ar: Any,
    utts: Sequence[Any],
    frame_rate: float,
    sampler: Any,
    name: str,
    *,
    prompt_seconds: float = 3.0,
    seed: int = 0,
    batch_size: int = 8,
    max_len_ratio: float | None = None,
    progress: bool = True,
) -> list[LoopRow]:
    """Continue each utterance's prompt with ``sampler``; one :class:`LoopRow` per utterance
    longer than the prompt (``utts``: :class:`valle.eval.diagnose.Utterance`)."""
    from tqdm import tqdm

    device = next(ar.parameters()).device
    P = max(1, int(round(prompt_seconds * frame_rate)))
    usable = [u for u in utts if u.codes.shape[0] > P]
    if len(usable) < len(utts):
        logger.info("%d utterances not longer than the %d-frame prompt skipped",
                    len(utts) - len(usable), P)  # fmt: skip
    order = sorted(range(len(usable)), key=lambda i: usable[i].codes.shape[0])
    ratio = ar.max_len_ratio if max_len_ratio is None else max_len_ratio
    G = int(ar.layout.frames_per_step)
    generator = torch.Generator(device=device).manual_seed(seed)
    rows: list[LoopRow] = []
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for chunk in tqdm(chunks, desc=f"loops ({name})", unit="batch", disable=not progress):
        batch = [usable[i] for i in chunk]
        text, text_lens = _pad([u.text for u in batch])  # (B, S)
        prompt, prompt_lens = _pad([u.codes[:P] for u in batch])  # (B, P, Q)
        steps = ar.generate(
            text.to(device),
            text_lens.to(device),
            prompt.to(device),
            prompt_lens.to(device),
            language=torch.tensor([u.language for u in batch], device=device),
            sampler=sampler,
            generator=generator,
            max_len_ratio=ratio,
        )
        limit = ar.layout.max_steps(max_new_steps(text_lens, ratio))  # (B,) steps
        for u, s, n in zip(batch, steps, limit.tolist(), strict=True):
            first = ar.layout.from_steps(s)[:, 0].cpu()  # (T,) first-codebook codes
            rows.append(
                LoopRow(
                    id=u.id,
                    sampler=name,
                    frames=int(first.shape[0]),
                    limit=n * G,
                    reference=int(u.codes.shape[0]) - P,
                    longest_run=longest_run(first),
                    hit_cap=int(s.shape[0]) >= n,
                )
            )
    return rows


def loop_summary(rows: Sequence[LoopRow], frame_rate: float, run_seconds: float = 1.0) -> dict:
    """Shares of outputs that hit the cap / repeat one code for more than ``run_seconds`` /
    either, mean longest run (s), mean generated / reference length; for one sampler."""
    n = len(rows)
    if n == 0:
        return {"items": 0}
    long_run = [r.longest_run > run_seconds * frame_rate for r in rows]
    return {
        "items": n,
        "hit_cap": sum(r.hit_cap for r in rows) / n,
        "long_run": sum(long_run) / n,
        "either": sum(r.hit_cap or lr for r, lr in zip(rows, long_run, strict=True)) / n,
        "longest_run_s": sum(r.longest_run for r in rows) / n / frame_rate,
        "length_ratio": sum(r.frames / max(1, r.reference) for r in rows) / n,
    }


def format_loop_table(summaries: dict[str, dict], run_seconds: float = 1.0) -> str:
    """A fixed-width table: one line per sampler."""
    head = ["sampler", "items", "hit cap", f"run > {run_seconds:g} s", "either",
            "mean longest run (s)", "length / reference"]  # fmt: skip
    body = []
    for name, s in summaries.items():
        if not s.get("items"):
            body.append([name, "0", "-", "-", "-", "-", "-"])
            continue
        body.append([
            name, str(s["items"]), f"{100 * s['hit_cap']:.1f}%", f"{100 * s['long_run']:.1f}%",
            f"{100 * s['either']:.1f}%", f"{s['longest_run_s']:.2f}", f"{s['length_ratio']:.2f}",
        ])  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def loops_checkpoint(
    checkpoint: str | os.PathLike[str],
    cuts: str | os.PathLike[str],
    samplers: Sequence[str] = ("greedy", "ras"),
    *,
    tokens: str | os.PathLike[str] | None = None,
    codec_dir: str | None = None,
    max_cuts: int | None = None,
    language: str | None = None,
    device: str = "cpu",
    prompt_seconds: float = 3.0,
    run_seconds: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
    max_len_ratio: float | None = None,
    top_p: float | None = None,
    window: int = 10,
    threshold: float = 0.1,
    progress: bool = True,
) -> tuple[dict[str, Any], list[LoopRow]]:
    """The loop test of a checkpoint on tokenized cuts (codes + phonemes): a summary
    (``{"samplers": {name: figures}, ...}``) and every decoded row.

    The frame rate is the model's (:func:`valle.eval.trained_model.model_frame_rate`: the
    checkpoint's codec facts, else ``codec_dir``'s codec.json), else the cuts' code frame rate;
    the symbol table is ``tokens`` or the checkpoint's own.
    """
    from valle.eval.cuts import load_cuts
    from valle.eval.diagnose import utterances_from_cuts
    from valle.eval.trained_model import frame_rate_or_cuts, load_trained_model

    names = sampler_names()
    unknown = [s for s in samplers if s not in names]
    if unknown or not samplers:
        raise ValueError(f"samplers must be among {', '.join(names)}, got {list(samplers)}")
    trained = load_trained_model(checkpoint, device, codec_dir, need_ar="the loop test decodes one")
    model: Any = trained.model
    symbols = trained.symbols(tokens)
    cut_set = load_cuts(cuts, language)
    utts = utterances_from_cuts(cut_set, symbols, max_cuts)
    if not utts:
        raise ValueError(f"{cuts} has no usable cuts (language {language})")
    rate, source = frame_rate_or_cuts(trained, next(c for c in cut_set if c.id == utts[0].id))
    logger.info("loop test: %d utterances, %g frames/s from %s", len(utts), rate, source)
    rows: list[LoopRow] = []
    figures: dict[str, dict] = {}
    for name in samplers:
        sampler = make_sampler(name, model, top_p=top_p, window=window, threshold=threshold)
        part = decode_loops(
            model.ar, utts, rate, sampler, name, prompt_seconds=prompt_seconds, seed=seed,
            batch_size=batch_size, max_len_ratio=max_len_ratio, progress=progress,
        )  # fmt: skip
        rows += part
        figures[name] = {**loop_summary(part, rate, run_seconds), "sampler": repr(sampler)}
    summary = {
        "checkpoint": str(checkpoint),
        "cuts": str(cuts),
        "language": language,
        "frame_rate": rate,
        "frame_rate_from": source,
        "prompt_seconds": prompt_seconds,
        "run_seconds": run_seconds,
        "max_len_ratio": model.ar.max_len_ratio if max_len_ratio is None else max_len_ratio,
        "frames_per_step": int(model.ar.layout.frames_per_step),
        "seed": seed,
        "samplers": figures,
    }
    return summary, rows
