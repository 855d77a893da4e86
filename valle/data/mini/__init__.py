"""The offline mini corpus: multi-speaker English, Mandarin and Japanese speech from Debian's
speech engines (flite, festival, espeak-ng), with the engines' own phone timings.

lhotse is imported only when the manifest functions are used, so that the synthesis worker
processes start quickly.
"""

from __future__ import annotations

from typing import Any

from valle.data.mini.corpus import load_metadata, make_mini_corpus
from valle.data.mini.voices import MINI_TEST_SPEAKERS, VOICES, Voice, plan_corpus

__all__ = [
    "MINI_TEST_SPEAKERS",
    "VOICES",
    "Voice",
    "load_metadata",
    "make_mini_corpus",
    "plan_corpus",
    "prepare_mini_manifests",
    "split_mini",
]


def __getattr__(name: str) -> Any:
    if name in ("prepare_mini_manifests", "split_mini"):
        from valle.data.mini import manifests

        return getattr(manifests, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
