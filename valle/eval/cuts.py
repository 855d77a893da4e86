"""Reading the lhotse cut manifests the benchmarks score.

Shape legend: none (manifests, no tensors).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["load_cuts"]


def load_cuts(
    path: str | os.PathLike[str], language: str | None = None, eager: bool = False
) -> Any:
    """The CutSet at ``path``; with ``language`` only the cuts whose first supervision is in
    it; ``eager``: loaded into memory, indexable by cut id."""
    from lhotse import CutSet

    if not Path(path).is_file():
        raise FileNotFoundError(f"cuts manifest not found: {path}")
    cuts = CutSet.from_file(path)
    if language is not None:
        cuts = CutSet.from_cuts(
            c for c in cuts if c.supervisions and c.supervisions[0].language == language
        )
    return cuts.to_eager() if eager else cuts
