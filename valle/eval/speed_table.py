"""The speed benchmark's outputs: the printed table, the CSV of every field, the report summaries.

Shape legend: none (rows of numbers).

:func:`format_table` prints the columns of :data:`COLUMNS` and notes on what was measured;
:func:`write_table` writes all fields of :class:`valle.eval.speed.SpeedRow` as CSV;
:func:`summaries` gives the ``valle-bench report`` JSON entries (one system per size and batch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from valle.eval.speed_row import SpeedRow

__all__ = ["COLUMNS", "format_table", "summaries", "write_table"]

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("size", "size", "{}"),
    ("batch", "B", "{}"),
    ("frames_per_step", "G", "{}"),
    ("steps", "AR steps", "{}"),
    ("ar_ms_step", "AR ms/step (cache)", "{:.2f}"),
    ("ar_ms_early", "early 10%", "{:.2f}"),
    ("ar_ms_late", "late 10%", "{:.2f}"),
    ("nocache_ms_step", "AR ms/step (no cache)", "{:.1f}"),
    ("speedup", "speed-up", "{:.1f}x"),
    ("floor_ms", "matvec floor ms", "{:.2f}"),
    ("step_over_floor", "step/floor", "{:.2f}"),
    ("nar_s", "NAR s (7 stages)", "{:.2f}"),
    ("rtf", "RTF", "{:.3f}"),
    ("peak_mem_mb", "peak MiB", "{:.0f}"),
    ("train_tokens_per_s", "train tokens/s", "{:,.0f}"),
    ("train_ms_step", "train ms/step", "{:.1f}"),
    ("train_peak_mem_mb", "train peak MiB", "{:.0f}"),
)


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "-"
    return fmt.format(value)


def format_table(rows: Sequence[SpeedRow]) -> str:
    """A fixed-width text table of the rows plus notes on what was measured."""
    head = [h for _, h, _ in COLUMNS]
    body = [[_cell(getattr(r, k), fmt) for k, _, fmt in COLUMNS] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    if rows:
        r = rows[0]
        lines += [
            "",
            f"device {r.device}, {r.threads} threads, float32; {r.text_tokens} text tokens, "
            f"{r.prompt_frames} prompt frames, {r.steps} AR steps of {r.frames_per_step} "
            f"frame(s) per row ({r.extra.get('weights', 'random weights')})",
            f"no cache: {r.nocache_points} sequence lengths timed, a quadratic fit averaged over "
            "all steps; floor: x @ W.T over every AR weight matrix (x of B rows), mean of "
            "passes timed between the cached steps (same load)",
            f"NAR: {r.nar_stages_timed} stage(s) timed, scaled to all; RTF = (AR + NAR) / "
            "(B x seconds), codec excluded; peak MiB: " + r.mem_kind,
        ]
        tr = r.extra.get("train")
        if tr:
            lines.append(
                f"training: {tr['steps']} timed AdamW steps (forward + backward + step) of "
                f"B={tr['batch']} x {tr['frames']} code frames, {tr['text_tokens']} text tokens; "
                "tokens/s = B x T / mean step"
            )
    return "\n".join(lines)


def write_table(rows: Sequence[SpeedRow], path: str | os.PathLike[str]) -> Path:
    """All fields of the rows as CSV (atomic)."""
    from valle.eval.files import write_csv

    names = [k for k in asdict(rows[0]) if k != "extra"] if rows else []
    return write_csv(Path(path), names, [asdict(r) for r in rows])


def _finite(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def summaries(rows: Sequence[SpeedRow], system: str | None = None) -> list[dict[str, Any]]:
    """``valle-bench report`` summaries: one system per size and batch.

    With ``system`` (a named model, e.g. the row name of the quality tables) the first row is
    that system and further rows are ``"<system> B=<batch>"``; without it every row is
    ``"valle-<size> B=<batch> (<device>)"``. Keys other than the report's columns describe the
    run (the report ignores them).
    """
    out = []
    for k, r in enumerate(rows):
        if system is None:
            label = r.size if "/" in r.size else f"valle-{r.size}"
            name = f"{label} B={r.batch} ({r.device})"
        else:
            name = system if k == 0 else f"{system} B={r.batch}"
        out.append(
            {
                "system": name,
                "rtf": r.rtf,
                "ar_ms_per_step": r.ar_ms_step,
                "peak_memory_mb": r.peak_mem_mb,
                "train_tokens_per_s": _finite(r.train_tokens_per_s),
                "train_peak_memory_mb": _finite(r.train_peak_mem_mb),
                "model": r.size,
                "batch": r.batch,
                "device": r.device,
                "threads": r.threads,
                "ar_steps": r.steps,
                "frames_per_step": r.frames_per_step,
                "memory": r.mem_kind,
                **({"train": r.extra["train"]} if "train" in r.extra else {}),
            }
        )
    return out
