"""Evaluation: WER/CER with ASR backends, speaker similarity, test-set protocols, report tables.

Public entry points (see each module for the paper practice it follows):

- :mod:`valle.eval.asr`: ``ASR`` protocol; ``HubertCTCASR``, ``WhisperASR``, ``FasterWhisperASR``.
- :mod:`valle.eval.normalize` and :mod:`valle.eval.wer`: normalisation, ``score_corpus``.
- :mod:`valle.eval.similarity`: ``SpeakerEncoder``; ``ResemblyzerEncoder``, ``WavLMSVEncoder``;
  ``score_similarity`` (SIM-o, SIM-r, SIM-utt).
- :mod:`valle.eval.protocols` and :mod:`valle.eval.rerank`: continuation / cross-sentence lists,
  best-of-N selection (fewest errors, highest similarity, VALL-E 2's capped similarity then WER).
- :mod:`valle.eval.loops`: the loop test (outputs that hit the length cap or repeat one code),
  greedy vs repetition-aware sampling; ``valle-bench loops``.
- :mod:`valle.eval.resynth`: ``resynthesize`` (codec row, reconstructed prompts for SIM-r);
  :mod:`valle.eval.resynth_files` writes them for a list or a manifest.
- :mod:`valle.eval.references`, :mod:`valle.eval.system_outputs`, :mod:`valle.eval.transcribe`,
  :mod:`valle.eval.protocol_similarity`: what ``valle-bench wer`` and ``sim`` read and score.
- :mod:`valle.eval.speed` (one row per model and batch), :mod:`valle.eval.decode_timing`,
  :mod:`valle.eval.matvec_floor`, :mod:`valle.eval.train_speed`, :mod:`valle.eval.peak_memory`,
  :mod:`valle.eval.speed_table`: ``valle-bench speed``.
- :mod:`valle.eval.trained_model`: the checkpoint loader of ``speed``, ``diagnose`` and
  ``loops`` (one read, one source for the frame rate); :mod:`valle.eval.cuts`.
- :mod:`valle.eval.report`: ``ResultsTable`` (CSV, markdown, PNG).
- :mod:`valle.eval.diagnose`, :mod:`valle.eval.teacher_forcing`, :mod:`valle.eval.attention_maps`:
  learning diagnostics (text-conditioning gap, persistence baselines, audio->text attention
  alignment, stopping); ``valle-bench diagnose`` and ``valle.train.diagnostics`` use them;
  :mod:`valle.eval.mel_teacher_forcing` gives the same figures for a mel AR (MELLE).
- :mod:`valle.eval.ceiling`: the WER a perfect AR would give (codec codebook prefixes, the
  ground-truth first codebook completed by the model's NAR); ``valle-bench ceiling``.

The command line front end is ``valle-bench`` (:mod:`valle.bin.bench`).
"""

from valle.eval.asr import ASR, FasterWhisperASR, HubertCTCASR, WhisperASR, build_asr
from valle.eval.normalize import EnglishNormalizer, normalizer_for
from valle.eval.protocols import TestItem, build_protocol, read_protocol, write_protocol
from valle.eval.report import ResultsTable
from valle.eval.rerank import HighestSimilarity, LowestWER, SampleScore, select_best
from valle.eval.resynth import resynthesize
from valle.eval.similarity import (
    ResemblyzerEncoder,
    SpeakerEncoder,
    WaveBatch,
    WavLMSVEncoder,
    build_speaker_encoder,
    cosine_similarity,
    score_similarity,
)
from valle.eval.wer import CorpusErrors, UtteranceErrors, score_corpus

__all__ = [
    "ASR",
    "CorpusErrors",
    "EnglishNormalizer",
    "FasterWhisperASR",
    "HighestSimilarity",
    "HubertCTCASR",
    "LowestWER",
    "ResemblyzerEncoder",
    "ResultsTable",
    "SampleScore",
    "SpeakerEncoder",
    "TestItem",
    "UtteranceErrors",
    "WavLMSVEncoder",
    "WaveBatch",
    "WhisperASR",
    "build_asr",
    "build_protocol",
    "build_speaker_encoder",
    "cosine_similarity",
    "normalizer_for",
    "read_protocol",
    "resynthesize",
    "score_corpus",
    "score_similarity",
    "select_best",
    "write_protocol",
]
