"""One row of ``valle-bench speed``: what a benchmarked (size, batch) measured.

Kept apart from :mod:`valle.eval.speed` (which measures) and :mod:`valle.eval.speed_table`
(which prints and writes rows), so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SpeedRow"]


@dataclass
class SpeedRow:
    """One line of the table (times in ms or s as named)."""

    size: str
    batch: int
    device: str
    threads: int
    text_tokens: int
    prompt_frames: int
    steps: int  # AR steps per row: ceil(frames / frames_per_step)
    ar_ms_step: float  # KV cache, mean over all steps
    ar_ms_early: float  # mean over the first 10 % of steps
    ar_ms_late: float  # mean over the last 10 % of steps
    nocache_ms_step: float  # recomputation, quadratic fit averaged over all steps
    nocache_points: int  # lengths actually timed for it
    speedup: float  # nocache_ms_step / ar_ms_step
    floor_ms: float  # one x @ W.T over all AR weight matrices (mean of passes between steps)
    step_over_floor: float  # ar_ms_step / floor_ms
    floor_best_ms: float  # fastest of those passes
    prefill_ms: float
    nar_s: float  # all Q - 1 stages
    nar_stages_timed: int
    rtf: float  # (prefill + AR steps + NAR) / (batch * seconds)
    peak_mem_mb: float
    mem_kind: str  # what peak_mem_mb measures
    train_tokens_per_s: float = float("nan")  # code frames per second of training (B*T / step)
    train_ms_step: float = float("nan")  # forward + backward + AdamW step
    train_peak_mem_mb: float = float("nan")
    frames_per_step: int = 1  # G: frames one AR step makes (VALL-E 2's group size)
    extra: dict[str, Any] = field(default_factory=dict)
