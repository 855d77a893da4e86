"""How long a system's outputs are against their references, per test list.

Shape legend: none (durations in seconds).

A zero-shot TTS system can read its text well and still stop early or run on; issue 9's target
counts the outputs within 25% of the reference's length and the empty ones. The reference of a
continuation item is the part of the utterance after the prompt (what the model was asked to
say), of a cross-sentence item the whole target utterance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["OutputLengths", "output_lengths", "reference_seconds"]

TOLERANCE = 0.25  # |output / reference - 1| at most this counts as "within"


@dataclass(frozen=True)
class OutputLengths:
    """Lengths of one list's outputs: ``items`` found, ``within`` of them within
    :data:`TOLERANCE` of their reference, ``empty`` (no samples), ``missing`` (no file), and the
    mean and extreme ratios output / reference over the non-empty ones."""

    items: int
    within: int
    empty: int
    missing: int
    mean_ratio: float
    min_ratio: float
    max_ratio: float

    def describe(self) -> str:
        """One line, e.g. ``22/24 within 25% of the reference length (ratio mean 1.00, ...)``."""
        text = (
            f"{self.within}/{self.items} within {TOLERANCE:.0%} of the reference length "
            f"(output / reference: mean {self.mean_ratio:.2f}, min {self.min_ratio:.2f}, "
            f"max {self.max_ratio:.2f}); {self.empty} empty"
        )
        if self.missing:
            text += f"; {self.missing} missing"
        return text


def reference_seconds(item: object) -> float:
    """What ``item`` (a :class:`valle.eval.protocols.TestItem`) asks the system to say, in
    seconds: the target after the prompt (continuation) or the whole target (cross-sentence)."""
    from valle.eval.protocols import target_offset

    return float(item.target_duration) - target_offset(item)  # type: ignore[attr-defined,arg-type]


def output_lengths(list_file: str | Path, hyp_dir: str | Path) -> OutputLengths:
    """Lengths of the outputs ``<hyp_dir>/<id>.wav`` of the protocol list ``list_file``.

    Raises ValueError when the list is empty or no output file exists.
    """
    import soundfile as sf

    from valle.eval.protocols import hypothesis_filename, read_protocol

    items = read_protocol(list_file)
    ratios: list[float] = []
    empty = missing = 0
    for item in items:
        path = Path(hyp_dir) / hypothesis_filename(item.id)
        if not path.is_file():
            missing += 1
            continue
        info = sf.info(str(path))
        if info.frames == 0:
            empty += 1
            continue
        ratios.append(info.frames / info.samplerate / max(reference_seconds(item), 1e-6))
    if not ratios and not empty:
        raise ValueError(f"no output of {list_file} found in {hyp_dir}")
    within = sum(abs(r - 1) <= TOLERANCE for r in ratios)
    return OutputLengths(
        items=len(items) - missing,
        within=within,
        empty=empty,
        missing=missing,
        mean_ratio=sum(ratios) / len(ratios) if ratios else 0.0,
        min_ratio=min(ratios, default=0.0),
        max_ratio=max(ratios, default=0.0),
    )
