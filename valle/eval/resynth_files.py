"""Codec resynthesis written to files: the "codec" row's waves and the prompts for SIM-r.

Shape legend: none (waves are 1-D float arrays at their own rate).

A job is ``(out path, wave, sample rate)``: :func:`protocol_jobs` gives a protocol list's
targets (``<out>/<id>.wav``) and prompts (``<out>/prompts/<id>.wav``), :func:`cut_jobs` every
cut of a manifest; :func:`write_resynthesized` passes each through the codec
(:func:`valle.eval.resynth.resynthesize`) and writes it at the codec's rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["cut_jobs", "protocol_jobs", "write_resynthesized"]

Job = tuple[Path, Any, int]


def protocol_jobs(items: Iterable[Any], cuts: Any, out_dir: Path) -> Iterator[Job]:
    """Each item's target and prompt audio (from ``cuts``, read when the job's turn comes)
    with its output path."""
    from valle.eval.protocols import load_prompt_audio, load_target_audio

    for item in items:
        yield (out_dir / f"{item.id}.wav", *load_target_audio(item, cuts))
        yield (out_dir / "prompts" / f"{item.id}.wav", *load_prompt_audio(item, cuts))


def cut_jobs(cuts: Iterable[Any], out_dir: Path) -> Iterator[Job]:
    """Every cut's recording with its output path ``<out_dir>/<cut id>.wav``."""
    for c in cuts:
        yield (out_dir / f"{c.id}.wav", c.load_audio()[0], int(c.sampling_rate))


def write_resynthesized(
    codec: Any,
    jobs: Iterable[Job],
    num_codebooks: int | None = None,
    total: int | None = None,
    progress: bool = True,
) -> int:
    """Encode and decode each job's wave with ``codec`` (the first ``num_codebooks`` only, None:
    all) and write it (atomically) at ``codec.sample_rate``; the number of waves written
    (``total``: how many to expect, for the progress bar)."""
    from tqdm import tqdm

    from valle.eval.audio import write_wave
    from valle.eval.resynth import resynthesize

    n = 0
    for path, wave, sr in tqdm(jobs, total=total, desc="resynth", unit="wav",
                               disable=not progress):  # fmt: skip
        (out,) = resynthesize(codec, [wave], sr, num_codebooks)
        write_wave(path, out, codec.sample_rate)
        n += 1
    return n
