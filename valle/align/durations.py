"""Phoneme durations for every cut of a manifest: batched, resumable, stored on the cuts.

Shape legend: B batch, T code frames, S tokens, V classes.

For each cut the acoustic model gives log-posteriors ``(T, V)`` over its code frames; the
monotonic Viterbi of :mod:`valle.align.viterbi` turns them into frames per phoneme token.

Silence, word boundaries and punctuation (the rule):

- ``_`` (word boundary) and punctuation tokens get >= 1 frame each, like any token; they are
  scored explicitly (:mod:`valle.align.scoring`): a separator takes the frames the model hears
  as a pause (the non-blank posterior's punctuation mass) and ``_`` pays
  ``ModelConfig.separator_cost`` per frame, so between words spoken without a pause it keeps one
  frame and the word's phonemes keep theirs;
- there is no blank in the path, so leading silence belongs to the first token and trailing
  silence to the last one (usually the final punctuation mark); every frame is assigned;
- between two CTC spikes, frames go to the phoneme they sound like (``phone_weight``);
- the Viterbi can add a weak constant-speaking-rate prior (``ModelConfig.align_prior``) so that
  a token the model barely recognises cannot swallow frames far from where it should be.

Each cut is passed through the model alone: the model's GroupNorm normalises over all the
frames of a row, padding included, so a cut batched with longer ones would get other scores.

The result is ``cut.custom["durations"]``: a list of ints, one per token of
``valle.data.tokenize.cut_phonemes(cut)`` (all supervisions, in order, exactly the batch's
``text_tokens``), each ``>= 1``, summing to the cut's number of code frames
(``load_codes(cut).shape[0]``). A cut with more tokens than frames is an error naming it.

Resuming: cuts are processed in chunks; each finished chunk is written atomically under
``<out>.chunks/`` with the aligner's fingerprint (its checkpoint and alignment settings), and a
rerun reuses the chunks whose cut ids and fingerprint match.
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
from valle.align.model import ModelConfig, load_aligner
from valle.align.scoring import Separators, alignment_scores
from valle.align.training import token_ids
from valle.align.viterbi import viterbi_durations
from valle.config import apply_overrides
from valle.data.manifests import save_cuts_atomic, write_json_atomic

logger = logging.getLogger(__name__)

__all__ = ["ALIGNMENT_SETTINGS", "DURATIONS_FIELD", "Aligner", "align_cuts", "cut_durations"]

DURATIONS_FIELD = "durations"


def cut_durations(cut: Cut) -> list[int]:
    """The durations stored on a cut (frames per phoneme token)."""
    if not cut.has_custom(DURATIONS_FIELD):
        raise ValueError(
            f"cut {cut.id} has no custom['{DURATIONS_FIELD}']; run the aligner stage "
            "(python -m valle.bin.align durations)"
        )
    return [int(d) for d in cut.custom[DURATIONS_FIELD]]


ALIGNMENT_SETTINGS = (
    "score",
    "prior_scale",
    "align_prior",
    "align_prior_width",
    "phone_weight",
    "silence_weight",
    "separator_cost",
)  # the ModelConfig keys that only the alignment reads (``Aligner(settings=...)``)


class Aligner:
    """A trained aligner (``aligner.pt``): cuts -> frames per phoneme token.

    Args:
        path: the checkpoint written by ``valle.bin.align train``.
        settings: ``key=value`` overrides of the checkpoint's alignment settings (the keys of
            ``ALIGNMENT_SETTINGS``, e.g. ``separator_cost=0``); the weights are untouched.
    """

    def __init__(self, path: str | Path, settings: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.model, self.feature_config, self.symbols, _ = load_aligner(path)
        if settings:
            config = apply_overrides(self.model.config, settings)  # unknown keys: an error
            keys = {item.split("=", 1)[0].strip() for item in settings}
            bad = sorted(keys - set(ALIGNMENT_SETTINGS))
            if bad:
                raise ValueError(
                    f"{bad}: only the alignment settings {list(ALIGNMENT_SETTINGS)} can be set "
                    "when aligning (the others shape the trained weights)"
                )
            self.model.config = config
        self.features = AlignFeatures(self.feature_config)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.separators = Separators.from_symbols(self.symbols)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def fingerprint(self) -> str:
        """The checkpoint's bytes and the alignment settings (a finished chunk is reused only
        when both match)."""
        h = hashlib.sha1(self.path.read_bytes())
        h.update(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        return h.hexdigest()

    @torch.inference_mode()
    def frame_scores(self, feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``(base, nonblank)``, each ``(T, V - 1)``, of one cut's features ``(T, F)``: the
        model's frame scores (``AcousticModel.frame_scores``) and its log-posterior without the
        blank."""
        logits = self.model(feats[None])  # (1, T, V)
        base = self.model.frame_scores(logits)[0]  # (T, V - 1)
        nonblank = self.model.nonblank_log_posteriors(logits)[0]  # (T, V - 1)
        return base.double().numpy(), nonblank.double().numpy()

    def align_one(self, cut: Cut, base: np.ndarray, nonblank: np.ndarray) -> np.ndarray:
        """Durations ``(S,)`` of a cut from its frame scores (:meth:`frame_scores`)."""
        ids = np.asarray(token_ids(cut, self.index))
        cfg = self.config
        scores = alignment_scores(
            base,
            nonblank,
            ids,
            self.separators,
            cfg.phone_weight,
            cfg.silence_weight,
            cfg.separator_cost,
        )  # (T, S)
        if cfg.align_prior > 0 and len(ids) <= scores.shape[0]:
            T, S = scores.shape
            prior = diagonal_prior(torch.tensor([T]), torch.tensor([S]), cfg.align_prior_width)
            scores = scores + cfg.align_prior * prior[0].numpy()  # (T, S)
        return viterbi_durations(scores, name=f"cut {cut.id}")

    def __call__(self, cuts: Sequence[Cut]) -> list[np.ndarray]:
        """Durations of each cut (one forward pass per cut)."""
        out: list[np.ndarray] = []
        for cut in cuts:
            feats = self.features(cut, num_code_frames(cut))  # (T, F)
            out.append(self.align_one(cut, *self.frame_scores(feats)))
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
