"""A system's outputs to score: ``<item id>.wav`` (``<item id>-<k>.wav`` for sample k) in a
directory, or the recordings of a cuts manifest (the ground-truth row).

Shape legend: N samples of one wave (1-D float arrays).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["collect_waves", "hypothesis_paths"]


def hypothesis_paths(hyp_dir: Path, item_id: str, n_samples: int) -> list[Path]:
    """The output files of one item: ``<id>.wav``, or ``<id>-<k>.wav`` for k < ``n_samples``."""
    from valle.eval.protocols import hypothesis_filename

    if n_samples == 1:
        return [hyp_dir / hypothesis_filename(item_id)]
    return [hyp_dir / hypothesis_filename(item_id, k) for k in range(n_samples)]


def collect_waves(
    ids: Sequence[str],
    *,
    hyp_dir: str | os.PathLike[str] | None = None,
    audio_from_cuts: str | os.PathLike[str] | None = None,
    n_samples: int = 1,
    allow_missing: bool = False,
    after_prompt_of: Mapping[str, Any] | None = None,
) -> tuple[list[str], list[list[tuple[Any, int]]]]:
    """For each id, its sample waves ``[(wave, sr), ...]`` from ``hyp_dir`` or, with
    ``audio_from_cuts``, the cut's recording; ids without files are dropped
    (``allow_missing``) or an error. Returns the kept ids and their waves.

    ``after_prompt_of`` (id -> :class:`valle.eval.protocols.TestItem`): the waves are whole
    target utterances (ground truth, codec resynthesis) and each is cut to the part its item
    asks a system to say (:func:`valle.eval.protocols.after_prompt`).
    """
    kept, waves = _load(ids, hyp_dir, audio_from_cuts, n_samples, allow_missing)
    if after_prompt_of is not None:
        from valle.eval.protocols import after_prompt

        missing = [i for i in kept if i not in after_prompt_of]
        if missing:
            raise ValueError(f"no protocol item for {missing[:3]}: cannot cut after the prompt")
        waves = [
            [(after_prompt(after_prompt_of[i], w, sr), sr) for w, sr in samples]
            for i, samples in zip(kept, waves, strict=True)
        ]
    return kept, waves


def _load(
    ids: Sequence[str],
    hyp_dir: str | os.PathLike[str] | None,
    audio_from_cuts: str | os.PathLike[str] | None,
    n_samples: int,
    allow_missing: bool,
) -> tuple[list[str], list[list[tuple[Any, int]]]]:
    from valle.eval.audio import load_wave

    if audio_from_cuts:
        from valle.eval.cuts import load_cuts

        cuts = load_cuts(audio_from_cuts, eager=True)
        kept, waves = [], []
        for i in ids:
            if i not in cuts:
                if allow_missing:
                    continue
                raise ValueError(f"cut {i} is not in {audio_from_cuts}")
            cut = cuts[i]
            kept.append(i)
            waves.append([(cut.load_audio()[0], int(cut.sampling_rate))])
        return kept, waves
    if hyp_dir is None or not Path(hyp_dir).is_dir():
        raise ValueError(f"--hyp-dir {hyp_dir} is not a directory")
    hyp_dir = Path(hyp_dir)
    kept, waves, missing = [], [], []
    for i in ids:
        paths = hypothesis_paths(hyp_dir, i, n_samples)
        absent = [p for p in paths if not p.is_file()]
        if absent:
            missing.append(absent[0].name)
            continue
        kept.append(i)
        waves.append([load_wave(p) for p in paths])
    if missing:
        msg = f"{len(missing)} of {len(ids)} outputs missing in {hyp_dir} (e.g. {missing[:3]})"
        if not allow_missing:
            raise ValueError(msg + "; synthesize them or pass --allow-missing")
        logger.warning("%s; scoring the %d present", msg, len(kept))
    if not kept:
        raise ValueError("nothing to score")
    return kept, waves
