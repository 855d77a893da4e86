"""Results tables: one row per system, columns WER, SIM-o, SIM-r (and SIM-utt, speed when given).

Rows are systems: the ground truth recordings, the codec resynthesis (encode + decode of the
ground truth; the ceiling a codec language model can reach), and the models. The inputs are
JSON summaries, as written by ``valle-bench wer`` / ``sim`` (and the speed benchmark), each an
object (or a list of objects) with a ``"system"`` name and any of the keys in :data:`COLUMNS`;
summaries of the same system are merged. Outputs: CSV, a markdown table and a PNG bar plot,
all written atomically.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valle.eval.files import atomic_path, read_json, write_csv, write_text_atomic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Column:
    """A table column: the summary key it reads, its header, and how a value is shown."""

    key: str
    header: str
    fmt: str
    scale: float = 1.0
    always: bool = False  # shown even when no system has a value
    small_fmt: str | None = None  # for 0 < |value| < 0.1 (e.g. a tiny model's memory in GB)

    def format(self, value: float) -> str:
        v = value * self.scale
        if self.small_fmt is not None and 0 < abs(v) < 0.1:
            return self.small_fmt.format(v)
        return self.fmt.format(v)

    @property
    def csv_name(self) -> str:
        return f"{self.key}_percent" if self.scale == 100.0 else self.key


COLUMNS: tuple[Column, ...] = (
    Column("wer", "WER (%)", "{:.2f}", scale=100.0, always=True),
    Column("sim_o", "SIM-o", "{:.3f}", always=True),
    Column("sim_r", "SIM-r", "{:.3f}", always=True),
    Column("sim_utt", "SIM-utt", "{:.3f}"),
    Column("wer_best_of_n", "WER best-of-N (%)", "{:.2f}", scale=100.0),
    Column("sim_o_best_of_n", "SIM-o best-of-N", "{:.3f}"),
    Column("rtf", "RTF", "{:.3f}"),
    Column("ar_ms_per_step", "AR ms/step", "{:.2f}"),
    Column("train_tokens_per_s", "train tokens/s", "{:,.0f}"),
    Column("peak_memory_gb", "peak mem (GB)", "{:.2f}", small_fmt="{:.2g}"),
    Column("train_peak_memory_gb", "train peak mem (GB)", "{:.2f}", small_fmt="{:.2g}"),
)
_KEYS = {c.key for c in COLUMNS}
# Synonyms accepted in summaries (e.g. ``valle-bench wer`` writes "error_rate").
# Speed summaries (``valle-bench speed --summary``) give memory in MiB.
_ALIASES = {
    "error_rate": "wer",
    "cer": "wer",
    "peak_memory_mb": "peak_memory_gb",
    "train_peak_memory_mb": "train_peak_memory_gb",
}


def _value(key: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    v = float(value)
    return v / 1024.0 if key.endswith("_mb") else v


def merge_summaries(summaries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Merge summaries by ``system`` (first-seen order); a key given twice for a system with
    different values is an error."""
    table: dict[str, dict[str, float]] = {}
    for s in summaries:
        name = s.get("system")
        if not name:
            raise ValueError(
                f"summary without a 'system' name: {dict(s)}; add --system when scoring"
            )
        row = table.setdefault(str(name), {})
        for k, v in s.items():
            key = _ALIASES.get(k, k)
            if key not in _KEYS:
                continue
            val = _value(k, v)
            if val is None:
                continue
            if key in row and not math.isclose(row[key], val, rel_tol=1e-9):
                raise ValueError(f"system {name!r} has two values for {key}: {row[key]} and {val}")
            row[key] = val
    return table


def load_summaries(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read JSON summaries (an object or a list of objects per file)."""
    out: list[dict[str, Any]] = []
    for p in paths:
        obj = read_json(p)
        items = obj if isinstance(obj, list) else [obj]
        for it in items:
            if not isinstance(it, dict):
                raise ValueError(f"{p}: expected a JSON object or a list of objects")
            out.append(it)
    return out


@dataclass(frozen=True)
class ResultsTable:
    """Systems x metrics."""

    rows: dict[str, dict[str, float]]

    @classmethod
    def from_summaries(cls, summaries: Iterable[Mapping[str, Any]]) -> ResultsTable:
        return cls(merge_summaries(summaries))

    @property
    def columns(self) -> list[Column]:
        return [c for c in COLUMNS if c.always or any(c.key in r for r in self.rows.values())]

    def to_csv(self, path: str | Path) -> Path:
        """Numbers unrounded; WER in percent like the markdown table."""
        cols = self.columns
        fieldnames = ["system"] + [c.csv_name for c in cols]
        recs = []
        for name, r in self.rows.items():
            rec: dict[str, Any] = {"system": name}
            for c in cols:
                rec[c.csv_name] = r[c.key] * c.scale if c.key in r else None
            recs.append(rec)
        return write_csv(path, fieldnames, recs)

    def to_markdown(self) -> str:
        cols = self.columns
        header = ["system"] + [c.header for c in cols]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|",
        ]
        for name, r in self.rows.items():
            cells = [name] + [c.format(r[c.key]) if c.key in r else "-" for c in cols]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def write_markdown(self, path: str | Path) -> Path:
        return write_text_atomic(path, self.to_markdown())

    def plot(self, path: str | Path) -> Path:
        """PNG with WER per system (left) and the similarities per system (right)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        names = list(self.rows)
        fig = Figure(figsize=(max(6.0, 1.6 * len(names) + 3), 3.8), dpi=120)
        FigureCanvasAgg(fig)
        ax_wer, ax_sim = fig.subplots(1, 2)
        x = list(range(len(names)))
        wer = [self.rows[n].get("wer", float("nan")) * 100 for n in names]
        ax_wer.bar(x, wer, color="tab:red")
        ax_wer.set_title("WER (%) - lower is better")
        sims = [
            c
            for c in COLUMNS
            if c.key in ("sim_o", "sim_r", "sim_utt") and any(c.key in self.rows[n] for n in names)
        ]
        width = 0.8 / max(1, len(sims))
        for k, c in enumerate(sims):
            vals = [self.rows[n].get(c.key, float("nan")) for n in names]
            ax_sim.bar(
                [i + (k - (len(sims) - 1) / 2) * width for i in x], vals, width, label=c.header
            )
        ax_sim.set_title("speaker similarity - higher is better")
        if sims:
            ax_sim.legend(fontsize=8)
        for ax in (ax_wer, ax_sim):
            ax.set_xticks(x)
            ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        return Path(path)

    def write_all(self, out_prefix: str | Path) -> dict[str, Path]:
        """Write ``<prefix>.csv``, ``<prefix>.md`` and ``<prefix>.png``."""
        out = Path(out_prefix)
        return {
            "csv": self.to_csv(out.with_suffix(".csv")),
            "md": self.write_markdown(out.with_suffix(".md")),
            "png": self.plot(out.with_suffix(".png")),
        }
