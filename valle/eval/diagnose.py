"""Learning diagnostics of a VALL-E-style model: does it read its text, beat trivial baselines,
align audio to text and stop where it should?

Shape legend: B batch, S text tokens, T frames, P prompt frames, Q codebooks, Y layers.

Measured on a set of utterances (dev cuts) with the model in eval mode, all deterministic:

- **text-conditioning gap** (``ar.text_gap``): teacher-forced AR loss (nats per target) with
  each utterance's text replaced by another utterance's minus the loss with its own text.
  The other text is that of the utterance with the closest text length that is a different
  utterance with a different token sequence (same language when there is one;
  :func:`pair_by_text_length`). A model that ignores its text shows no gap; one that reads
  it loses much more with the wrong text. Accuracy with both texts is reported too.
- **persistence baselines**: AR accuracy beside "repeat the previous code", and for each NAR
  codebook j its accuracy beside "the code of the previous frame in codebook j"
  (:mod:`valle.eval.teacher_forcing`).
- **attention**: per-layer, head-averaged audio->text attention maps of the teacher-forced AR
  with monotonicity / diagonality scores (:mod:`valle.eval.attention_maps`), averaged over
  the utterances; ``best_layer`` is the layer with the highest diagonal focus.
- **NAR mel gain** (a codec whose codes are vectors, the mel-RVQ codec, given as ``codec``):
  per NAR stage, ``mel_mse`` = squared error per frame in the codec's normalised mel space of
  the reconstruction from the true codebooks < j (``prefix``), plus the NAR's argmax code
  (``argmax``) or its softmax-expected codebook vector (``expected``), or the true code j
  (``truth``), all against the reconstruction from every true codebook; ``mel_gain`` =
  argmax minus prefix (negative: the NAR's code helps). Code accuracy near chance hides
  whether the codes still move the frames the right way; this shows it. A phoneme-aligned
  NAR (VALL-E R) reads each frame's phoneme id from the batch's ``durations``.
- **stopping**: teacher-forced EOS position error (first argmax-EOS step vs the true end, in
  frames) and a free-running length check with the continuation protocol: prompt = the first
  ``prompt_seconds`` of the utterance (codes), text = its full transcript; the AR (its
  configured default sampler unless one is given, with a seeded generator) continues the
  prompt and the length it generates is divided by the reference's remaining length.

What a model's AR is decides how these are measured: a small per-kind object chosen from the
model (:func:`ar_diagnostics_for`, by the AR's layout) does the teacher-forced pass, its
summary blocks and the free-running generation. :class:`CodeARDiagnostics` measures a
discrete-code AR as above (blocks ``ar`` and ``stop``); :class:`PointerARDiagnostics` VALL-E
R's phoneme-aligned AR through its own teacher-forced pass on the batch's durations (block
``ar`` with ``pointer_acc``, attention; no text gap, EOS or free running); :class:`MelARDiagnostics` a
continuous mel AR (MELLE; :mod:`valle.eval.mel_teacher_forcing`), on ``batch["mel"]``:

- block ``mel``: ``loss`` / ``loss_other_text`` = MELLE's regression loss of ``y'`` (L1 +
  squared L2 per frame, summed over the F bins, averaged over the scored mel frames; mean
  latent, no pre-net dropout), ``text_gap`` = other minus own (same pairing as above),
  ``persistence_loss`` = the same loss of "repeat the previous ground-truth frame",
  ``frames`` = scored frames;
- block ``stop``: ``flag_error_frames_mean`` (first teacher-forced step whose stop
  probability exceeds the StopFlag ``threshold`` minus the true last step, x r frames),
  ``flag_abs_error_frames_mean``, ``flag_exact``, ``flag_missed``, ``threshold``;
- ``attention`` as above (audio queries = the AR's mel step inputs ``[BOS, s_1 ..]``);
- ``free_running``: the continuation protocol on mel frames (prompt = the first
  ``prompt_seconds`` of mel frames, whole steps) through the model's own ``generate``
  (``prompt_mel``; its post-net and its pre-net dropout drawn from the seeded generator),
  lengths in mel frames. The frame rate is the mel's (sample rate / hop).
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from valle.data import batch as B_
from valle.eval.attention_maps import (
    BAND,
    TOLERANCE,
    AlignmentScores,
    alignment_scores,
    ar_text_attention,
    mean_scores,
)
from valle.eval.mel_teacher_forcing import (
    RegressionTally,
    deterministic_prenet,
    mel_targets,
    mel_teacher_forced,
)
from valle.eval.teacher_forcing import (
    MelErrorTally,
    TokenTally,
    ar_targets,
    ar_teacher_forced,
    has_codebook_vectors,
    nar_mel_errors,
    nar_stage_logits,
    nar_tally,
)

logger = logging.getLogger(__name__)

PROMPT_START = getattr(B_, "PROMPT_START", "prompt_start")  # (B,) where the prompt was cut

__all__ = [
    "Utterance",
    "utterances_from_cuts",
    "pair_by_text_length",
    "collate",
    "with_texts",
    "batch_texts",
    "DiagnosticsAccumulator",
    "CodeARDiagnostics",
    "MelARDiagnostics",
    "PointerARDiagnostics",
    "ar_diagnostics_for",
    "free_running_lengths",
    "free_running_mel_lengths",
    "length_summary",
    "diagnose",
    "flat_scalars",
    "format_report",
    "diagnose_checkpoint",
    "diagnostic_featurizers",
    "mel_gain_codec",
    "write_attention_pngs",
]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Utterance:
    """One scored utterance: phoneme ids (S,), codes (T, Q), language id, and for a mel
    model its log-mel frames (T_mel, F) (its codes may then be empty, (0, Q)). ``extra``:
    other per-item fields the model reads, by batch key (e.g. ``durations`` (S,) for VALL-E
    R's phoneme-aligned parts)."""

    id: str
    text: Tensor
    codes: Tensor
    language: int = 0
    mel: Tensor | None = None
    extra: Mapping[str, Tensor] = field(default_factory=dict)


def utterances_from_cuts(
    cuts: Iterable[Any],
    symbols: Any,
    max_cuts: int | None = None,
    featurizers: Sequence[Any] = (),
) -> list[Utterance]:
    """Tokenized cuts (codes + phonemes, as training reads them) -> utterances.

    ``max_cuts``: the first N cuts only. ``featurizers``: extra fields to compute (a mel
    model's :class:`~valle.data.featurizers.MelFrames` fills ``Utterance.mel``, the others
    ``Utterance.extra``, e.g. VALL-E R's durations).
    """
    from lhotse import CutSet

    from valle.data.dataset import SpeechTokenDataset

    dataset = SpeechTokenDataset(symbols, featurizers=featurizers)
    out: list[Utterance] = []
    for cut in cuts:
        if max_cuts is not None and len(out) >= max_cuts:
            break
        batch = dataset[CutSet.from_cuts([cut])]  # one row of the batch contract
        text = batch[B_.TEXT_TOKENS][0, : int(batch[B_.TEXT_LENS][0])]  # (S,)
        codes = batch[B_.AUDIO_CODES][0, : int(batch[B_.AUDIO_LENS][0])]  # (T, Q)
        if len(text) == 0 or codes.shape[0] == 0:
            logger.warning("skipping %s: no text or no codes", cut.id)
            continue
        mel = None
        if B_.MEL in batch:
            mel = batch[B_.MEL][0, : int(batch[B_.lens_key(B_.MEL)][0])]  # (T_mel, F)
            if mel.shape[0] == 0:
                logger.warning("skipping %s: no mel frames", cut.id)
                continue
        extra = {}
        for f in featurizers:
            if f.name == B_.MEL or f.name not in batch:
                continue
            n = batch.get(B_.lens_key(f.name))
            value = batch[f.name][0]
            extra[f.name] = value[: int(n[0])] if n is not None else value
        out.append(Utterance(cut.id, text, codes, int(batch[B_.LANGUAGE][0]), mel, extra))
    return out


def pair_by_text_length(
    texts: Sequence[Tensor], languages: Sequence[int] | None = None
) -> list[int]:
    """For each text, the index of another one of the closest length (deterministic).

    Candidates are the other indices whose token sequence differs (any other index when all
    are equal), of the same language when there is such a candidate. Ties go to the smaller
    index. Needs at least two texts.
    """
    n = len(texts)
    if n < 2:
        raise ValueError("pairing texts needs at least two utterances")
    keys = [tuple(t.tolist()) for t in texts]
    lens = [len(k) for k in keys]
    langs = list(languages) if languages is not None else [0] * n
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        distinct = [j for j in others if keys[j] != keys[i]] or others
        same_lang = [j for j in distinct if langs[j] == langs[i]] or distinct
        out.append(min(same_lang, key=lambda j: (abs(lens[j] - lens[i]), j)))
    return out


def _pad(rows: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    lens = torch.tensor([r.shape[0] for r in rows], dtype=torch.long)
    out = rows[0].new_full((len(rows), int(lens.max()), *rows[0].shape[1:]), B_.PAD_ID)
    for b, r in enumerate(rows):
        out[b, : r.shape[0]] = r
    return out, lens


def collate(
    utts: Sequence[Utterance], texts: Sequence[Tensor] | None = None, prompt_frames: int = 0
) -> dict[str, Any]:
    """A batch dict (:mod:`valle.data.batch`) of ``utts``; ``texts`` replaces their texts.

    With ``prompt_frames`` > 0 the batch carries ``prompt_codes``: each utterance's first
    ``min(prompt_frames, T - 1)`` frames (for NAR prompt policies that read them). When every
    utterance has mel frames the batch carries ``mel`` (B, T_mel, F) and ``mel_lens``, and
    each ``Utterance.extra`` field that all utterances have (padded with its key's pad value,
    lengths under its lens key; e.g. ``durations`` (B, S)).
    """
    text_rows = list(texts) if texts is not None else [u.text for u in utts]
    text_tokens, text_lens = _pad(text_rows)
    codes, code_lens = _pad([u.codes for u in utts])
    batch: dict[str, Any] = {
        B_.TEXT_TOKENS: text_tokens,
        B_.TEXT_LENS: text_lens,
        B_.LANGUAGE: torch.tensor([u.language for u in utts], dtype=torch.long),
        B_.AUDIO_CODES: codes,
        B_.AUDIO_LENS: code_lens,
        B_.CUT_IDS: [u.id for u in utts],
        B_.SPEAKERS: ["" for _ in utts],
    }
    if prompt_frames > 0:
        prompts = [u.codes[: max(1, min(prompt_frames, u.codes.shape[0] - 1))] for u in utts]
        batch[B_.PROMPT_CODES], batch[B_.PROMPT_LENS] = _pad(prompts)
        # the prompt is each target's own prefix: policies leave those frames out of the loss
        batch[PROMPT_START] = torch.zeros(len(utts), dtype=torch.long)
    if utts and all(u.mel is not None for u in utts):
        batch[B_.MEL], batch[B_.lens_key(B_.MEL)] = _pad([u.mel for u in utts])  # type: ignore[misc]
    for name in utts[0].extra if utts else ():
        if all(name in u.extra for u in utts):
            rows = [u.extra[name] for u in utts]
            batch[name], batch[B_.lens_key(name)] = B_.pad_rows(rows, B_.pad_value(name))
    return batch


def batch_texts(batch: Mapping[str, Any]) -> list[Tensor]:
    """The unpadded text rows (S_b,) of a batch."""
    lens = batch[B_.TEXT_LENS].tolist()
    return [batch[B_.TEXT_TOKENS][b, : int(n)] for b, n in enumerate(lens)]


def with_texts(batch: Mapping[str, Any], texts: Sequence[Tensor]) -> dict[str, Any]:
    """A copy of ``batch`` whose text rows are ``texts`` (the audio is unchanged)."""
    text_tokens, text_lens = _pad([t.cpu() for t in texts])
    device = batch[B_.TEXT_TOKENS].device
    return {**batch, B_.TEXT_TOKENS: text_tokens.to(device), B_.TEXT_LENS: text_lens.to(device)}


def positional_durations(durations: Tensor, text_lens: Tensor) -> Tensor:
    """Durations (B, S') for other texts of ``text_lens`` (B,) tokens: token ``k`` keeps the
    true text's ``durations[:, k]`` (B, S) where it has one, later tokens get the row's mean;
    the text gap of a model that reads durations then changes the phonemes, not the rhythm
    (the model rescales durations to its frames)."""
    d = durations.long()
    true_lens = (d > 0).sum(-1).clamp(min=1)  # (B,)
    mean = (d.sum(-1) / true_lens).round().clamp(min=1).long()  # (B,)
    width = int(text_lens.max())
    k = torch.arange(width, device=d.device)[None, :]  # (1, S')
    copied = torch.nn.functional.pad(d, (0, max(0, width - d.shape[1])))[:, :width]
    out = torch.where(k < true_lens[:, None], copied, mean[:, None])
    return torch.where(k < text_lens[:, None], out.clamp(min=1), 0)


def _to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


# --------------------------------------------------------------------------- per AR kind


class CodeARDiagnostics:
    """Teacher-forced figures of a discrete-code AR (VALL-E, VALL-E X, VALL-E 2's groups):
    cross entropy, accuracy beside "repeat the previous code", EOS position
    (:mod:`valle.eval.teacher_forcing`); summary blocks ``ar`` and ``stop``."""

    def __init__(self, model: nn.Module, ar: Any) -> None:
        self.model = model
        self.ar = ar
        self.true = TokenTally()
        self.paired = TokenTally()  # own text, rows with a partner
        self.other = TokenTally()
        self.eos_errors: list[int] = []
        self.eos_missed = 0

    # facts about the data the AR reads
    def featurizers(self) -> tuple[Any, ...]:
        """Extra per-cut fields the AR needs (none: codes and phonemes)."""
        return ()

    def length(self, utt: Utterance) -> int:
        return int(utt.codes.shape[0])

    @property
    def count(self) -> int:
        return self.true.count

    def add(self, batch: dict[str, Any], other_texts: Sequence[Tensor] | None) -> list[Tensor]:
        """Score one batch; returns the per-item attention maps (Y, N_b+1, S_b)."""
        ar = self.ar
        audio_in, in_lens, _, _ = ar_targets(ar, batch)
        logits, maps = ar_text_attention(ar, batch, audio_in, in_lens)
        for item in ar_teacher_forced(ar, batch, logits):
            self.true.add(item.tally)
            if other_texts is not None:
                self.paired.add(item.tally)
            self.eos_errors.append(item.eos_error_frames)
            self.eos_missed += int(item.eos_missed)
        if other_texts is not None:
            for item in ar_teacher_forced(ar, with_texts(batch, other_texts)):
                self.other.add(item.tally)
        return maps

    def summary(self) -> dict[str, Any]:
        t, o, p = self.true, self.other, self.paired
        ar: dict[str, Any] = {
            "loss": t.loss,
            "acc": t.acc,
            "persistence_acc": t.baseline_acc,
            "targets": t.count,
        }
        if o.count:
            ar.update(
                {
                    "loss_other_text": o.loss,
                    "acc_other_text": o.acc,
                    "text_gap": o.loss - p.loss,
                }
            )
        errs = self.eos_errors
        stop = {
            "eos_error_frames_mean": sum(errs) / len(errs),
            "eos_abs_error_frames_mean": sum(abs(e) for e in errs) / len(errs),
            "eos_exact": sum(e == 0 for e in errs) / len(errs),
            "eos_missed": self.eos_missed / len(errs),
        }
        return {"ar": ar, "stop": stop}

    def free_running(
        self, utts: Sequence[Utterance], frame_rate: float, **kwargs: Any
    ) -> list[dict[str, Any]]:
        return free_running_lengths(self.ar, utts, frame_rate, **kwargs)


class MelARDiagnostics:
    """Teacher-forced figures of a continuous mel AR (MELLE): regression loss of ``y'``
    (mean latent, no pre-net dropout) beside "repeat the previous frame", stop-flag position
    (:mod:`valle.eval.mel_teacher_forcing`); summary blocks ``mel`` and ``stop`` (see the
    module docstring; no ``stop`` for a model whose rows end after their durations). The
    model must have ``config.mel`` and ``generate(..., prompt_mel=)``
    (:class:`valle.variants.melle.Melle`)."""

    def __init__(self, model: nn.Module, ar: Any) -> None:
        self.model = model
        self.ar = ar
        self.threshold = float(getattr(ar.stop, "threshold", 0.5))
        stop_config = getattr(getattr(getattr(model, "config", None), "ar", None), "stop", None)
        # a row that ends after its durations (the frame-aligned MELLE) has no stop flag to score
        self.scores_flag = not getattr(stop_config, "reads_durations", False)
        self.true = RegressionTally()
        self.paired = RegressionTally()
        self.other = RegressionTally()
        self.stop_errors: list[int] = []
        self.stop_missed = 0

    def featurizers(self) -> tuple[Any, ...]:
        """The model's own data request (its :class:`~valle.data.featurizers.MelFrames`)."""
        from valle.registry import data_request

        return tuple(data_request(self.model.config).featurizers)  # type: ignore[arg-type]

    def length(self, utt: Utterance) -> int:
        if utt.mel is None:
            raise ValueError(f"utterance {utt.id} has no mel frames (a mel AR reads them)")
        return int(utt.mel.shape[0])

    @property
    def count(self) -> int:
        return self.true.count

    def add(self, batch: dict[str, Any], other_texts: Sequence[Tensor] | None) -> list[Tensor]:
        """Score one batch; returns the per-item attention maps (Y, N_b, S_b)."""
        ar = self.ar
        audio_in, lens, _, _ = mel_targets(ar, batch)
        pack = getattr(self.model, "teacher_forcing_inputs", None)  # a frame-aligned MELLE's track
        with deterministic_prenet(ar):
            packed = audio_in if pack is None else pack(batch, audio_in, lens)
            out, maps = ar_text_attention(ar, batch, packed, lens)
            for item in mel_teacher_forced(ar, batch, out, self.threshold):
                self.true.add(item.tally)
                if other_texts is not None:
                    self.paired.add(item.tally)
                self.stop_errors.append(item.stop_error_frames)
                self.stop_missed += int(item.stop_missed)
            if other_texts is not None:
                other = with_texts(batch, other_texts)
                if B_.DURATIONS in batch:  # the true rhythm on the other phonemes
                    other[B_.DURATIONS] = positional_durations(
                        batch[B_.DURATIONS], other[B_.TEXT_LENS]
                    )
                other_in = audio_in if pack is None else pack(other, audio_in, lens)
                other_out = ar(other[B_.TEXT_TOKENS], other[B_.TEXT_LENS], other_in, lens,
                               other.get(B_.LANGUAGE))  # fmt: skip
                for item in mel_teacher_forced(ar, other, other_out, self.threshold):
                    self.other.add(item.tally)
        return maps

    def summary(self) -> dict[str, Any]:
        t, o, p = self.true, self.other, self.paired
        mel: dict[str, Any] = {
            "loss": t.loss,
            "persistence_loss": t.baseline_loss,
            "frames": t.count,
        }
        if o.count:
            mel.update({"loss_other_text": o.loss, "text_gap": o.loss - p.loss})
        errs = self.stop_errors
        stop = {
            "flag_error_frames_mean": sum(errs) / len(errs),
            "flag_abs_error_frames_mean": sum(abs(e) for e in errs) / len(errs),
            "flag_exact": sum(e == 0 for e in errs) / len(errs),
            "flag_missed": self.stop_missed / len(errs),
            "threshold": self.threshold,
        }
        return {"mel": mel, "stop": stop} if self.scores_flag else {"mel": mel}

    def free_running(
        self, utts: Sequence[Utterance], frame_rate: float, **kwargs: Any
    ) -> list[dict[str, Any]]:
        return free_running_mel_lengths(self.model, utts, frame_rate, **kwargs)


class PointerARDiagnostics:
    """Teacher-forced figures of VALL-E R's phoneme-aligned AR
    (:class:`valle.ar.pointer.PointerARDecoder`), from its own ``teacher_forced`` pass (steps
    ``[code, pointer, phoneme id]`` built from ``batch["durations"]``): code cross entropy and
    accuracy (head outputs ``[..., :V]``) beside "repeat the previous code" (over its steps:
    frames, or windows of merged codes), the pointer's move accuracy (``pointer_acc``) and
    the audio->text attention (audio queries = its steps, no BOS row); summary block ``ar``.

    Not measured: the text gap (the durations belong to the utterance's own text), the EOS
    error (the pointer stops, there is no EOS) and free running (its generate loop needs a
    prompt alignment)."""

    def __init__(self, model: nn.Module, ar: Any) -> None:
        self.model = model
        self.ar = ar
        self.true = TokenTally()
        self.moves = 0
        self.moves_correct = 0

    def featurizers(self) -> tuple[Any, ...]:
        """The model's own data request (its durations)."""
        from valle.registry import data_request

        return tuple(data_request(getattr(self.model, "config", None)).featurizers)

    def length(self, utt: Utterance) -> int:
        return int(utt.codes.shape[0])

    @property
    def count(self) -> int:
        return self.true.count

    def add(self, batch: dict[str, Any], other_texts: Sequence[Tensor] | None) -> list[Tensor]:
        """Score one batch; returns the per-item attention maps (Y, N_b, S_b)."""
        from valle.modules.attention_probe import AttentionProbe

        ar = self.ar
        text_lens = batch[B_.TEXT_LENS]
        S = batch[B_.TEXT_TOKENS].shape[1]
        layers = getattr(getattr(ar, "backbone", None), "layers", None)
        probe = None
        if layers is not None:
            probe = AttentionProbe(layers, queries=slice(S, None), keep=lambda p: p[..., :S])
            with probe:
                out, targets, mask = ar.teacher_forced(batch)  # (B, N, V+2), (B, N, 2), (B, N)
        else:
            out, targets, mask = ar.teacher_forced(batch)
        V = out.shape[-1] - 2
        codes, moves = targets[..., 0], targets[..., 1]  # (B, N)
        logits = out[..., :V].float()
        nll = F.cross_entropy(logits.reshape(-1, V), codes.reshape(-1), reduction="none")
        prev = torch.cat([codes.new_full((codes.shape[0], 1), -1), codes[:, :-1]], dim=1)
        self.true.add(
            TokenTally(
                loss_sum=float((nll.reshape(codes.shape) * mask).sum()),
                count=int(mask.sum()),
                correct=int(((logits.argmax(-1) == codes) & mask).sum()),
                baseline_correct=int(((prev == codes) & mask).sum()),
            )
        )
        self.moves += int(mask.sum())
        self.moves_correct += int(((out[..., V:].argmax(-1) == moves) & mask).sum())
        if probe is None or any(m is None for m in probe.maps):
            return []
        maps = torch.stack([m for m in probe.maps if m is not None], dim=1)  # (B, Y, N, S)
        lens = mask.sum(-1)
        return [maps[b, :, : int(lens[b]), : int(text_lens[b])] for b in range(maps.shape[0])]

    def summary(self) -> dict[str, Any]:
        t = self.true
        return {
            "ar": {
                "loss": t.loss,
                "acc": t.acc,
                "persistence_acc": t.baseline_acc,
                "pointer_acc": self.moves_correct / self.moves if self.moves else float("nan"),
                "targets": t.count,
            }
        }

    def free_running(
        self, utts: Sequence[Utterance], frame_rate: float, **kwargs: Any
    ) -> list[dict[str, Any]]:
        raise ValueError(
            "free running of the phoneme-aligned AR is not measured here (its generate loop "
            "needs the prompt's alignment); use valle-bench loops or the decode stage"
        )


ARDiagnostics = CodeARDiagnostics | MelARDiagnostics | PointerARDiagnostics


def ar_diagnostics_for(model: nn.Module, ar: Any | None = None) -> ARDiagnostics:
    """The per-kind diagnostics of ``model``'s AR (``ar``: default ``model.ar``): VALL-E R's
    phoneme-aligned AR -> :class:`PointerARDiagnostics`; else by the AR's layout's declared
    ``continuous``: continuous mel frames -> :class:`MelARDiagnostics`, else codes ->
    :class:`CodeARDiagnostics`."""
    from valle.ar.pointer import PointerARDecoder

    ar = getattr(model, "ar", None) if ar is None else ar
    if ar is None:
        raise ValueError(f"{type(model).__name__} has no AR to diagnose")
    if isinstance(ar, PointerARDecoder):
        return PointerARDiagnostics(model, ar)
    if getattr(getattr(ar, "layout", None), "continuous", False):
        return MelARDiagnostics(model, ar)
    return CodeARDiagnostics(model, ar)


# --------------------------------------------------------------------------- teacher forcing


@dataclass
class DiagnosticsAccumulator:
    """Sums the teacher-forced diagnostics over batches; :meth:`summary` gives the figures.

    Args:
        model: a model with ``ar`` and/or ``nar`` parts (e.g. :class:`valle.variants.valle.Valle`,
            :class:`valle.variants.melle.Melle`); the AR is measured by
            :func:`ar_diagnostics_for`'s kind (``ar_kind``).
        stages: which parts to measure (those the model has).
        seed: seeds the NAR prompt policy's draws.
        tolerance, band: attention score settings (:mod:`valle.eval.attention_maps`).
        keep_maps: how many utterances' attention maps to keep for images.
        codec: the codec of the model's codes; one whose codes are vectors
            (:func:`~valle.eval.teacher_forcing.has_codebook_vectors`, the mel-RVQ codec) adds
            each NAR stage's mel errors and gain (``nar.stage_<j>.mel_mse`` / ``mel_gain``);
            None or a codes-only codec (EnCodec): no mel figures.
    """

    model: nn.Module
    stages: tuple[str, ...] = ("ar", "nar")
    seed: int = 0
    tolerance: float = TOLERANCE
    band: float = BAND
    keep_maps: int = 1
    layer_scores: list[list[AlignmentScores]] = field(default_factory=list)  # per layer
    nar: dict[int, TokenTally] = field(default_factory=dict)
    maps: list[tuple[str, Tensor, list[AlignmentScores]]] = field(default_factory=list)
    utterances: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # part -> why
    codec: Any | None = None
    nar_mel: dict[int, MelErrorTally] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ar = getattr(self.model, "ar", None) if "ar" in self.stages else None
        self.ar_kind = None if self.ar is None else ar_diagnostics_for(self.model, self.ar)
        self.nar_part = getattr(self.model, "nar", None) if "nar" in self.stages else None
        self.mel_codec = self.codec if has_codebook_vectors(self.codec) else None
        # the NAR prompt policies draw on the CPU and move the draws to the model
        self._generator = torch.Generator().manual_seed(self.seed)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def add(self, batch: Mapping[str, Any], other_texts: Sequence[Tensor] | None = None) -> None:
        """Score one batch; ``other_texts`` (one per row) give the text-gap pass (None: skip)."""
        batch = _to(batch, self.device)
        self.utterances += int(batch[B_.AUDIO_LENS].shape[0])
        if self.ar is not None:
            try:
                self._add_ar(batch, other_texts)
            except Exception as err:  # an AR of another kind (e.g. VALL-E R's pointer AR)
                self._skip("ar", err)
        if self.nar_part is not None:
            try:
                for stage in range(1, int(self.nar_part.num_codebooks)):
                    out = nar_stage_logits(self.nar_part, batch, stage, self._generator)
                    self.nar.setdefault(stage, TokenTally()).add(nar_tally(out))
                    self._add_nar_mel(out)
            except Exception as err:
                self._skip("nar", err)

    def _add_nar_mel(self, out: Any) -> None:
        if self.mel_codec is None:
            return
        try:
            tally = nar_mel_errors(self.mel_codec, out)
        except Exception as err:  # e.g. a codec that is not the one of the codes
            self._skip("nar_mel", err)
        else:
            self.nar_mel.setdefault(out.stage, MelErrorTally()).add(tally)

    def _skip(self, part: str, err: Exception) -> None:
        """Drop a part whose decoder these diagnostics do not fit (its figures are left out)."""
        logger.warning("learning diagnostics: %s skipped (%s: %s)", part, type(err).__name__, err)
        self.skipped[part] = f"{type(err).__name__}: {err}"
        if part == "ar":
            self.ar = self.ar_kind = None
        elif part == "nar_mel":
            self.mel_codec, self.nar_mel = None, {}
        else:
            self.nar_part, self.nar, self.nar_mel = None, {}, {}

    def _add_ar(self, batch: dict[str, Any], other_texts: Sequence[Tensor] | None) -> None:
        assert self.ar_kind is not None
        maps = self.ar_kind.add(batch, other_texts)
        ids = batch.get(B_.CUT_IDS) or [str(b) for b in range(len(maps))]
        for uid, m in zip(ids, maps, strict=False):  # m: (Y, N+1, S); none without a probe
            scores = [alignment_scores(m[y], self.tolerance, self.band) for y in range(m.shape[0])]
            if not self.layer_scores:
                self.layer_scores = [[] for _ in scores]
            for y, s in enumerate(scores):
                self.layer_scores[y].append(s)
            if len(self.maps) < self.keep_maps:
                self.maps.append((str(uid), m, scores))

    def summary(self) -> dict[str, Any]:
        """The figures as a nested dict (see the module docstring for their meaning)."""
        out: dict[str, Any] = {"utterances": self.utterances}
        if self.skipped:
            out["skipped"] = dict(self.skipped)
        if self.ar_kind is not None and self.ar_kind.count:
            out.update(self.ar_kind.summary())
            layers = [mean_scores(s).to_dict() for s in self.layer_scores]
            if layers:
                best = max(range(len(layers)), key=lambda y: layers[y]["diagonal_focus"])
                out["attention"] = {"layers": layers, "best_layer": best, "best": layers[best]}
        if self.nar:
            out["nar"] = {}
            for j, t in sorted(self.nar.items()):
                stage = {"loss": t.loss, "acc": t.acc, "persistence_acc": t.baseline_acc}
                mel = self.nar_mel.get(j)
                if mel is not None and mel.count:
                    stage["mel_mse"] = mel.mse
                    stage["mel_gain"] = mel.gain
                out["nar"][f"stage_{j}"] = stage
        return out


# --------------------------------------------------------------------------- free running


def _prompt_frames(prompt_seconds: float, frame_rate: float, frames_per_step: int) -> int:
    p = int(round(prompt_seconds * frame_rate))
    return max(frames_per_step, (p // frames_per_step) * frames_per_step)


def _continuations(
    utts: Sequence[Utterance],
    audio: Callable[[Utterance], Tensor],
    P: int,
    batch_size: int,
    run: Callable[[list[Utterance], Tensor, Tensor, Tensor, Tensor], list[int]],
) -> list[dict[str, Any]]:
    """The continuation protocol's loop: utterances longer than ``P`` frames of ``audio(u)``
    (T, ...), shortest first, in batches; ``run(chunk, text, text_lens, prompt, prompt_lens)``
    gives the generated frames per row."""
    usable = [u for u in utts if audio(u).shape[0] > P]
    if len(usable) < len(utts):
        logger.info("free running: %d utterances not longer than the %d-frame prompt skipped",
                    len(utts) - len(usable), P)  # fmt: skip
    order = sorted(range(len(usable)), key=lambda i: audio(usable[i]).shape[0])
    rows: list[dict[str, Any]] = []
    for start in range(0, len(order), batch_size):
        chunk = [usable[i] for i in order[start : start + batch_size]]
        text, text_lens = _pad([u.text for u in chunk])
        prompt, prompt_lens = _pad([audio(u)[:P] for u in chunk])
        generated = run(chunk, text, text_lens, prompt, prompt_lens)
        for u, n in zip(chunk, generated, strict=True):
            rows.append({"id": u.id, "generated": n, "reference": audio(u).shape[0] - P})
    return rows


@torch.no_grad()
def free_running_lengths(
    ar: Any,
    utts: Sequence[Utterance],
    frame_rate: float,
    *,
    prompt_seconds: float = 3.0,
    seed: int = 0,
    batch_size: int = 8,
    sampler: Any | None = None,
    max_len_ratio: float | None = None,
) -> list[dict[str, Any]]:
    """Continuation protocol: prompt = the first ``prompt_seconds`` of each utterance's codes,
    text = its full transcript; rows ``{"id", "generated", "reference"}`` in frames, where
    ``reference`` is the utterance's remaining length. Utterances not longer than the prompt
    are skipped. ``sampler`` None: the AR's default; one seeded generator for the whole run.
    """
    device = next(ar.parameters()).device
    per_step = int(ar.layout.frames_per_step)
    P = _prompt_frames(prompt_seconds, frame_rate, per_step)
    generator = torch.Generator(device=device).manual_seed(seed)

    def run(chunk: list[Utterance], text: Tensor, text_lens: Tensor, prompt: Tensor,
            prompt_lens: Tensor) -> list[int]:  # fmt: skip
        steps = ar.generate(
            text.to(device),
            text_lens.to(device),
            prompt.to(device),
            prompt_lens.to(device),
            language=torch.tensor([u.language for u in chunk], device=device),
            sampler=sampler,
            generator=generator,
            max_len_ratio=max_len_ratio,
        )
        return [int(ar.layout.from_steps(s).shape[0]) for s in steps]

    return _continuations(utts, lambda u: u.codes, P, batch_size, run)


@torch.no_grad()
def free_running_mel_lengths(
    model: Any,
    utts: Sequence[Utterance],
    frame_rate: float,
    *,
    prompt_seconds: float = 3.0,
    seed: int = 0,
    batch_size: int = 8,
    sampler: Any | None = None,
    max_len_ratio: float | None = None,
) -> list[dict[str, Any]]:
    """:func:`free_running_lengths` for a mel model (MELLE): prompt = the first
    ``prompt_seconds`` of each utterance's mel frames (whole AR steps), continued by
    ``model.generate(text, text_lens, prompt_mel=, prompt_mel_lens=, ...)``; lengths in mel
    frames. ``sampler`` None: the model's default latent draw; the seeded generator also
    draws the pre-net's inference dropout, as when the model speaks.
    """
    device = next(model.parameters()).device
    P = _prompt_frames(prompt_seconds, frame_rate, int(model.ar.layout.frames_per_step))
    generator = torch.Generator(device=device).manual_seed(seed)

    def mel_of(u: Utterance) -> Tensor:
        if u.mel is None:
            raise ValueError(f"utterance {u.id} has no mel frames (a mel AR reads them)")
        return u.mel

    def run(chunk: list[Utterance], text: Tensor, text_lens: Tensor, prompt: Tensor,
            prompt_lens: Tensor) -> list[int]:  # fmt: skip
        frames = model.generate(
            text.to(device),
            text_lens.to(device),
            prompt_mel=prompt.to(device),
            prompt_mel_lens=prompt_lens.to(device),
            language=torch.tensor([u.language for u in chunk], device=device),
            sampler=sampler,
            generator=generator,
            max_len_ratio=max_len_ratio,
        )  # B x (T_b, F)
        return [int(f.shape[0]) for f in frames]

    return _continuations(utts, mel_of, P, batch_size, run)


def length_summary(rows: Sequence[Mapping[str, Any]], prompt_seconds: float) -> dict[str, Any]:
    """Mean / median of generated / reference length, share within 25 %, empty outputs."""
    if not rows:
        return {"items": 0}
    ratios = [r["generated"] / r["reference"] for r in rows]
    return {
        "items": len(rows),
        "prompt_seconds": prompt_seconds,
        "length_ratio_mean": sum(ratios) / len(ratios),
        "length_ratio_median": statistics.median(ratios),
        "within_25pct": sum(abs(x - 1.0) <= 0.25 for x in ratios) / len(ratios),
        "empty": sum(r["generated"] == 0 for r in rows) / len(rows),
    }


# --------------------------------------------------------------------------- the whole check


def _length_batches(
    utts: Sequence[Utterance],
    max_frames: int,
    length: Callable[[Utterance], int] = lambda u: int(u.codes.shape[0]),
) -> list[list[int]]:
    """Indices grouped by ``length`` (default: code frames) so that a batch holds at most
    ``max_frames`` padded frames (at least one utterance per batch)."""
    order = sorted(range(len(utts)), key=lambda i: (length(utts[i]), i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = max([length(utts[j]) for j in cur] + [length(utts[i])])
        if cur and longest * (len(cur) + 1) > max_frames:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


@torch.no_grad()
def diagnose(
    model: nn.Module,
    utts: Sequence[Utterance],
    frame_rate: float,
    *,
    prompt_seconds: float = 3.0,
    seed: int = 0,
    max_batch_frames: int = 6000,
    free_running: bool = True,
    sampler: Any | None = None,
    keep_maps: int = 4,
    tolerance: float = TOLERANCE,
    band: float = BAND,
    codec: Any | None = None,
) -> tuple[dict[str, Any], DiagnosticsAccumulator]:
    """All diagnostics of ``model`` on ``utts`` (see the module docstring).

    ``codec``: the codec of the utterances' codes; a mel-RVQ codec adds the NAR's mel gain
    (:class:`DiagnosticsAccumulator`), a codes-only codec or None nothing.

    Returns the summary dict and the accumulator (its ``maps`` hold the first ``keep_maps``
    utterances' attention maps for images).
    """
    if len(utts) < 2:
        raise ValueError("diagnostics need at least two utterances (the text gap pairs them)")
    was_training = model.training
    model.eval()
    try:
        partner = pair_by_text_length([u.text for u in utts], [u.language for u in utts])
        acc = DiagnosticsAccumulator(
            model, seed=seed, tolerance=tolerance, band=band, keep_maps=keep_maps, codec=codec
        )
        P = int(round(prompt_seconds * frame_rate))
        kind = acc.ar_kind
        length = kind.length if kind is not None else (lambda u: int(u.codes.shape[0]))
        for idx in _length_batches(utts, max_batch_frames, length):
            chunk = [utts[i] for i in idx]
            acc.add(collate(chunk, prompt_frames=P), [utts[partner[i]].text for i in idx])
        summary = acc.summary()
        kind = acc.ar_kind  # None: no AR, or its teacher-forced pass did not fit it
        if free_running and kind is not None:
            try:
                rows = kind.free_running(
                    utts, frame_rate, prompt_seconds=prompt_seconds, seed=seed, sampler=sampler
                )
            except Exception as err:  # e.g. a generate loop that needs more inputs
                logger.warning("free running skipped (%s: %s)", type(err).__name__, err)
                summary.setdefault("skipped", {})["free_running"] = f"{type(err).__name__}: {err}"
            else:
                summary["free_running"] = length_summary(rows, prompt_seconds)
                summary["free_running"]["rows"] = rows
    finally:
        model.train(was_training)
    return summary, acc


# --------------------------------------------------------------------------- output


def flat_scalars(summary: Mapping[str, Any], prefix: str = "diag/") -> dict[str, float]:
    """The summary's numbers as flat ``prefix + section/name`` scalars (for TensorBoard).

    Per-layer attention scores become ``attention/layer<i>_<name>``; NAR stage figures
    ``nar/stage_<j>_<name>`` (e.g. ``nar/stage_1_mel_gain``, ``nar/stage_1_mel_mse_prefix``);
    lists (rows) are left out.
    """
    out: dict[str, float] = {}
    for section, value in summary.items():
        if isinstance(value, (int, float)):
            out[f"{prefix}{section}"] = float(value)
            continue
        if not isinstance(value, Mapping):
            continue
        for name, v in value.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{prefix}{section}/{name}"] = float(v)
            elif isinstance(v, Mapping):  # best attention scores, NAR stages
                for k, x in v.items():
                    if isinstance(x, (int, float)):
                        out[f"{prefix}{section}/{name}_{k}"] = float(x)
                    elif isinstance(x, Mapping):  # a NAR stage's mel errors
                        for k2, y in x.items():
                            if isinstance(y, (int, float)):
                                out[f"{prefix}{section}/{name}_{k}_{k2}"] = float(y)
            elif name == "layers" and isinstance(v, list):
                for y, scores in enumerate(v):
                    for k, x in scores.items():
                        out[f"{prefix}{section}/layer{y}_{k}"] = float(x)
    return out


def _f(x: Any, fmt: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def format_report(summary: Mapping[str, Any]) -> str:
    """A short plain-text report of :func:`diagnose`'s summary."""
    lines = [f"utterances: {summary.get('utterances', 0)}"]
    ar = summary.get("ar")
    if ar:
        lines.append(
            f"AR  loss {_f(ar['loss'])} nats (other text {_f(ar.get('loss_other_text'))}), "
            f"text gap {_f(ar.get('text_gap'), '+.3f')} nats"
        )
        lines.append(
            f"AR  acc {_f(ar['acc'])} (other text {_f(ar.get('acc_other_text'))}), "
            f"persistence baseline {_f(ar['persistence_acc'])}"
            + (f", pointer move acc {_f(ar['pointer_acc'])}" if "pointer_acc" in ar else "")
        )
    mel = summary.get("mel")
    if mel:
        lines.append(
            f"mel loss {_f(mel['loss'])} L1+L2 per frame (other text "
            f"{_f(mel.get('loss_other_text'))}), text gap {_f(mel.get('text_gap'), '+.3f')}, "
            f"persistence baseline {_f(mel['persistence_loss'])}"
        )
    stop = summary.get("stop")
    if stop and "flag_error_frames_mean" in stop:
        lines.append(
            f"stop flag (p > {stop['threshold']:g}) teacher-forced error "
            f"{_f(stop['flag_error_frames_mean'], '+.1f')} frames (|error| "
            f"{_f(stop['flag_abs_error_frames_mean'], '.1f')}, exact {_f(stop['flag_exact'], '.2f')}"
            f", never raised {_f(stop['flag_missed'], '.2f')})"
        )
    elif stop:
        lines.append(
            f"EOS teacher-forced error {_f(stop['eos_error_frames_mean'], '+.1f')} frames "
            f"(|error| {_f(stop['eos_abs_error_frames_mean'], '.1f')}, exact "
            f"{_f(stop['eos_exact'], '.2f')}, never predicted {_f(stop['eos_missed'], '.2f')})"
        )
    att = summary.get("attention")
    if att:
        for y, s in enumerate(att["layers"]):
            mark = " *" if y == att["best_layer"] else ""
            lines.append(
                f"attention layer {y}: monotonic {_f(s['monotonic'], '.2f')}, spearman "
                f"{_f(s['spearman'], '.2f')}, pearson {_f(s['pearson'], '.2f')}, diagonal focus "
                f"{_f(s['diagonal_focus'], '.2f')}, text mass {_f(s['text_mass'], '.2f')}{mark}"
            )
    for name, s in (summary.get("nar") or {}).items():
        line = (
            f"NAR {name}: loss {_f(s['loss'])}, acc {_f(s['acc'])}, "
            f"persistence baseline {_f(s['persistence_acc'])}"
        )
        mse = s.get("mel_mse")
        if mse:
            line += (
                f", mel gain {_f(s['mel_gain'], '+.4f')} (mse prefix {_f(mse['prefix'], '.4f')}, "
                f"argmax {_f(mse['argmax'], '.4f')}, expected {_f(mse['expected'], '.4f')}, "
                f"truth {_f(mse['truth'], '.4f')})"
            )
        lines.append(line)
    fr = summary.get("free_running")
    if fr and fr.get("items"):
        lines.append(
            f"free running ({fr['items']} items, {fr['prompt_seconds']:g} s prompts): "
            f"length / reference mean {_f(fr['length_ratio_mean'], '.2f')}, median "
            f"{_f(fr['length_ratio_median'], '.2f')}, within 25% {_f(fr['within_25pct'], '.2f')}, "
            f"empty {_f(fr['empty'], '.2f')}"
        )
    for part, why in (summary.get("skipped") or {}).items():
        lines.append(f"{part}: skipped ({why})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- files


def _codec_name(codec_dir: str | os.PathLike[str]) -> str | None:
    """The registered name of the codec ``codec_dir`` names (its ``codec.json``, or the
    files of a codec directory), without loading it; None when it names none."""
    from valle.codec.registry import recognize_codec_dir
    from valle.data.codec_info import CodecInfo

    p = Path(codec_dir)
    spec = p if p.is_file() else p / "codec.json"
    if spec.is_file() and spec.name != "config.json":
        return str(CodecInfo.from_file(spec).name)
    found = recognize_codec_dir(p) if p.is_dir() else None
    return found[0] if found is not None else None


def mel_gain_codec(
    trained: Any, codec_dir: str | os.PathLike[str] | None = None, device: str = "cpu"
) -> Any | None:
    """The codec for the NAR's mel gain, or None: ``codec_dir``'s codec when given, else the
    codec the checkpoint carries (``"codec_embedded"``). Only a small (embeddable) codec is
    loaded, and kept only when its codes are vectors
    (:func:`~valle.eval.teacher_forcing.has_codebook_vectors`, the mel-RVQ codec); EnCodec is
    not loaded. A codec that fails to load is logged and left out."""
    from valle.codec.registry import is_embeddable
    from valle.inference.codec_spec import codec_from_dir, codec_from_embedded_entry

    try:
        if codec_dir is not None:
            name = _codec_name(codec_dir)
            if name is None or not is_embeddable(name):
                return None
            codec = codec_from_dir(codec_dir, device=device)
        elif trained.extras.get("codec_embedded") is not None:
            codec = codec_from_embedded_entry(
                trained.extras["codec_embedded"], trained.extras.get("codec"), device=device
            )
        else:
            return None
    except Exception as err:  # the figures without the mel gain are still worth having
        logger.warning("NAR mel gain skipped: no codec (%s: %s)", type(err).__name__, err)
        return None
    return codec if has_codebook_vectors(codec) else None


def diagnostic_featurizers(model: nn.Module) -> tuple[Any, ...]:
    """The extra per-cut fields the diagnostics read: the AR kind's
    (:meth:`CodeARDiagnostics.featurizers` / :meth:`MelARDiagnostics.featurizers`), and the
    model's own data request when its NAR reads per-frame phoneme ids (VALL-E R: durations)."""
    from valle.registry import data_request

    kind = ar_diagnostics_for(model) if getattr(model, "ar", None) is not None else None
    out = list(kind.featurizers()) if kind is not None else []
    nar = getattr(model, "nar", None)
    if getattr(getattr(nar, "audio_conditioner", None), "needs_frame_ids", False):
        out += data_request(getattr(model, "config", None)).featurizers
    names: set[str] = set()
    unique = []
    for f in out:
        if f.name not in names:
            names.add(f.name)
            unique.append(f)
    return tuple(unique)


def diagnose_checkpoint(
    checkpoint: str | os.PathLike[str],
    cuts: str | os.PathLike[str],
    *,
    tokens: str | os.PathLike[str] | None = None,
    codec_dir: str | os.PathLike[str] | None = None,
    max_cuts: int | None = None,
    language: str | None = None,
    device: str = "cpu",
    codec: Any | None = None,
    **kwargs: Any,
) -> tuple[dict[str, Any], DiagnosticsAccumulator]:
    """:func:`diagnose` on a checkpoint (``model.pt`` or a Lightning checkpoint of valle-train)
    and a tokenized cuts manifest (codes + phonemes, e.g. ``mini_cuts_dev.jsonl.gz``).

    The checkpoint is read once (:func:`valle.eval.trained_model.load_trained_model`). The
    symbol table is ``tokens`` when given, else the checkpoint's own; the frame rate is the
    model's (:func:`valle.eval.trained_model.model_frame_rate`: a mel model's mel frame rate,
    else the checkpoint's codec facts, else ``codec_dir``'s codec.json), else the cuts' code
    frame rate. ``language`` (e.g. ``"en"``) keeps the cuts whose first supervision is in that
    language; ``max_cuts`` then keeps the first N. ``kwargs`` go to :func:`diagnose`. A mel
    model (MELLE) gets its mel frames from the cuts' audio (its own data request); a
    phoneme-aligned NAR (VALL-E R) its durations (:func:`diagnostic_featurizers`).

    ``codec``: the codec for the NAR's mel gain; None: :func:`mel_gain_codec` (``codec_dir``'s
    mel-RVQ codec, else the checkpoint's embedded one, else none).
    """
    from valle.eval.cuts import load_cuts
    from valle.eval.trained_model import frame_rate_or_cuts, load_trained_model

    if not Path(cuts).is_file():
        raise FileNotFoundError(f"cuts manifest not found: {cuts}")
    trained = load_trained_model(checkpoint, device, codec_dir)
    model = trained.model
    symbols = trained.symbols(tokens)
    cut_set = load_cuts(cuts, language)
    featurizers = diagnostic_featurizers(model)
    utts = utterances_from_cuts(cut_set, symbols, max_cuts, featurizers)
    if len(utts) < 2:
        raise ValueError(f"{cuts} has {len(utts)} usable cuts (language {language}); need 2+")
    rate, source = frame_rate_or_cuts(trained, next(c for c in cut_set if c.id == utts[0].id))
    if codec is None:
        codec = mel_gain_codec(trained, codec_dir, device)
    summary, acc = diagnose(model, utts, rate, codec=codec, **kwargs)
    summary["checkpoint"] = str(checkpoint)
    summary["cuts"] = str(cuts)
    summary["language"] = language
    summary["frame_rate"] = rate
    summary["frame_rate_from"] = source
    return summary, acc


def write_attention_pngs(
    acc: DiagnosticsAccumulator, out_dir: str | os.PathLike[str]
) -> list[Path]:
    """One PNG per kept utterance (``attention_<id>.png``): its per-layer audio->text maps."""
    from valle.eval.attention_maps import save_attention_png

    paths = []
    for uid, maps, scores in acc.maps:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in uid)
        paths.append(save_attention_png(maps, Path(out_dir) / f"attention_{safe}.png", uid, scores))
    return paths
