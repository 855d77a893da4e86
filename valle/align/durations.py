"""Phoneme durations for every cut of a manifest: batched, resumable, stored on the cuts.

Shape legend: B batch, T code frames, S tokens, V classes.

For each cut the acoustic model gives log-posteriors ``(T, V)`` over its code frames; the
monotonic Viterbi of :mod:`valle.align.viterbi` turns them into frames per phoneme token.

Silence, word boundaries and punctuation (the rule):

- ``_`` (word boundary) and punctuation tokens are aligned like any token: the model is trained
  on them as targets (a pause where there is one, often nothing), and each gets >= 1 frame; a
  pause between words lands on the ``_`` / punctuation tokens between them (their CTC spikes
  sit in the pause; with the default ``token_or_blank`` score the blank frames after a spike
  stay with that token until the next token's spike);
- there is no blank in the path, so leading silence belongs to the first token and trailing
  silence to the last one (usually the final punctuation mark); every frame is assigned;
- the Viterbi adds a weak constant-speaking-rate prior (``ModelConfig.align_prior``) so that a
  token the model barely recognises cannot swallow frames far from where it should be.

The result is ``cut.custom["durations"]``: a list of ints, one per token of
``valle.data.tokenize.cut_phonemes(cut)`` (all supervisions, in order, exactly the batch's
``text_tokens``), each ``>= 1``, summing to the cut's number of code frames
(``load_codes(cut).shape[0]``). A cut with more tokens than frames is an error naming it.

Resuming: cuts are processed in chunks; each finished chunk is written atomically under
``<out>.chunks/`` with the aligner's fingerprint, and a rerun reuses the chunks whose cut ids
and aligner match.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut
from tqdm import tqdm

from valle.align.features import AlignFeatures, num_code_frames
from valle.align.forward_sum import diagonal_prior
from valle.align.model import load_aligner
from valle.align.training import pad_features, token_ids
from valle.align.viterbi import token_scores, viterbi_durations
from valle.data.manifests import save_cuts_atomic, write_json_atomic

logger = logging.getLogger(__name__)

__all__ = ["DURATIONS_FIELD", "Aligner", "align_cuts", "cut_durations"]

DURATIONS_FIELD = "durations"


def cut_durations(cut: Cut) -> list[int]:
    """The durations stored on a cut (frames per phoneme token)."""
    if not cut.has_custom(DURATIONS_FIELD):
        raise ValueError(
            f"cut {cut.id} has no custom['{DURATIONS_FIELD}']; run the aligner stage "
            "(python -m valle.bin.align durations)"
        )
    return [int(d) for d in cut.custom[DURATIONS_FIELD]]


class Aligner:
    """A trained aligner (``aligner.pt``): cuts -> frames per phoneme token.

    Args:
        path: the checkpoint written by ``valle.bin.align train``.
        batch_frames: most frames per forward pass.
    """

    def __init__(self, path: str | Path, batch_frames: int = 20000) -> None:
        self.path = Path(path)
        self.model, self.feature_config, self.symbols, _ = load_aligner(path)
        self.features = AlignFeatures(self.feature_config)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.batch_frames = batch_frames

    @property
    def fingerprint(self) -> str:
        return hashlib.sha1(self.path.read_bytes()).hexdigest()

    @torch.inference_mode()
    def log_probs(self, feats: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """Per-frame class scores ``(T_b, V - 1)`` (``AcousticModel.frame_scores``) of feature
        rows ``(T_b, F)``."""
        x, lens = pad_features(feats)  # (B, T, F)
        scores = self.model.frame_scores(self.model(x))  # (B, T, V - 1)
        return [scores[b, : int(n)].numpy() for b, n in enumerate(lens)]

    def align_one(self, cut: Cut, frame_scores: np.ndarray) -> np.ndarray:
        """Durations ``(S,)`` of a cut from its class scores ``(T, V - 1)``."""
        ids = np.asarray(token_ids(cut, self.index))
        scores = token_scores(frame_scores, ids, blank=None)  # (T, S)
        cfg = self.model.config
        if cfg.align_prior > 0 and len(ids) <= scores.shape[0]:
            T, S = scores.shape
            prior = diagonal_prior(torch.tensor([T]), torch.tensor([S]), cfg.align_prior_width)
            scores = scores + cfg.align_prior * prior[0].numpy()  # (T, S)
        return viterbi_durations(scores, name=f"cut {cut.id}")

    def __call__(self, cuts: Sequence[Cut]) -> list[np.ndarray]:
        """Durations of each cut (one forward pass per group of ``batch_frames`` frames)."""
        out: list[np.ndarray] = []
        group: list[tuple[Cut, torch.Tensor]] = []

        def flush() -> None:
            for (c, _), lp in zip(group, self.log_probs([f for _, f in group]), strict=True):
                out.append(self.align_one(c, lp))
            group.clear()

        for cut in cuts:
            feats = self.features(cut, num_code_frames(cut))  # (T, F)
            longest = max([feats.shape[0], *(f.shape[0] for _, f in group)])
            if group and longest * (len(group) + 1) > self.batch_frames:
                flush()
            group.append((cut, feats))
        if group:
            flush()
        return out


def align_cuts(
    cuts: Iterable[Cut],
    aligner: Aligner,
    out_path: str | Path,
    chunk_size: int = 200,
    progress: bool = True,
) -> CutSet:
    """Add ``custom["durations"]`` to every cut and write the manifest ``out_path`` atomically.

    Finished chunks under ``<out_path>.chunks/`` are reused by a rerun when their cut ids and
    the aligner's fingerprint match.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    cut_list = list(cuts)
    if not cut_list:
        raise ValueError("no cuts to align")
    out_path = Path(out_path)
    chunk_dir = out_path.parent / f"{out_path.name.split('.')[0]}.chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = aligner.fingerprint
    chunks = [cut_list[i : i + chunk_size] for i in range(0, len(cut_list), chunk_size)]
    done: list[Cut] = []
    bar = tqdm(total=len(cut_list), desc="durations", unit="cut", disable=not progress)
    for k, chunk in enumerate(chunks):
        path = chunk_dir / f"cuts.{k:05d}.jsonl.gz"
        meta = chunk_dir / f"cuts.{k:05d}.json"
        ids = [c.id for c in chunk]
        if path.is_file() and meta.is_file():
            info = json.loads(meta.read_text())
            if info.get("aligner") == fingerprint and info.get("cut_ids") == ids:
                stored = {c.id: c for c in CutSet.from_file(path)}
                done.extend(
                    c.with_custom(DURATIONS_FIELD, stored[c.id].custom[DURATIONS_FIELD])
                    for c in chunk
                )
                bar.update(len(chunk))
                continue
        durs = aligner(chunk)
        aligned = [
            c.with_custom(DURATIONS_FIELD, [int(x) for x in d])
            for c, d in zip(chunk, durs, strict=True)
        ]
        save_cuts_atomic(CutSet.from_cuts(aligned), path)
        write_json_atomic({"aligner": fingerprint, "cut_ids": ids}, meta)  # marks it finished
        done.extend(aligned)
        bar.update(len(chunk))
    bar.close()
    result = CutSet.from_cuts(done)
    save_cuts_atomic(result, out_path)
    return result
