"""A tiny tokenized corpus made on the spot: tone 'speech', codes, phonemes and tokens.txt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet
from lhotse.features.io import NumpyFilesWriter

from tests.data.factories import make_cuts
from valle.text import SymbolTable

FRAME_RATE = 50.0


def tokenize_tiny(root: Path, speakers: int = 2, utts: int = 3) -> tuple[CutSet, Path]:
    """Cuts with ``codes`` (a made-up (T, 2) array at 50 Hz) and letter 'phonemes' with ``_``
    between words and a final ``.``; returns the cuts and the path of their tokens.txt."""
    cuts = make_cuts(root / "wav", speakers=speakers, utts=utts)
    out = []
    with NumpyFilesWriter(str(root / "codes")) as writer:
        for cut in cuts:
            T = int(cut.duration * FRAME_RATE)
            arr = (np.arange(T * 2).reshape(T, 2) % 16).astype(np.int16)  # (T, Q)
            codes = writer.store_array(cut.id, arr, frame_shift=1 / FRAME_RATE, temporal_dim=0)
            sup = cut.supervisions[0]
            phones: list[str] = []
            for w in sup.text.split():
                phones += [*(["_"] if phones else []), *w]
            sup = sup.with_custom("phonemes", [*phones, "."])
            c = cut.with_custom("codes", codes)
            c.supervisions = [sup]
            out.append(c)
    result = CutSet.from_cuts(out)
    tokens = root / "tokens.txt"
    SymbolTable.build(c.supervisions[0].custom["phonemes"] for c in result).to_file(tokens)
    return result, tokens


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("align_corpus")
    cuts, tokens = tokenize_tiny(root)
    path = root / "cuts.jsonl.gz"
    cuts.to_file(path)
    return path, tokens
