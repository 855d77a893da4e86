"""The offline mini corpus (public names; the parts live in :mod:`valle.data.mini`).

Stage 0 :func:`make_mini_corpus` synthesises multi-speaker speech (35 voices: 17 English, most of
the audio; 9 Mandarin and 9 Japanese, about 25 minutes each) with flite, festival and espeak-ng;
stage 1
:func:`prepare_mini_manifests` makes lhotse manifests with phone alignments; :func:`split_mini`
holds out :data:`MINI_TEST_SPEAKERS` for the zero-shot test.
"""

from valle.data.mini.corpus import load_metadata, make_mini_corpus
from valle.data.mini.manifests import prepare_mini_manifests, split_mini
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
