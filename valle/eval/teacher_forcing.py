"""Teacher-forced measurements of the AR and NAR beside trivial baselines.

Shape legend: B batch, S text tokens, T frames, Q codebooks, N AR steps, V classes,
``*E`` the AR layout's step shape (``()`` for one code per step, ``(G,)`` for a group).

What is counted (the same positions as the models' own ``acc`` metrics):

- AR (VALL-E Sec 4.2.1): every first-codebook target of the utterance plus the EOS after it,
  with the inputs ``[BOS, c_1 .. c_N]``. ``loss`` is the mean cross entropy in nats per target.
- AR persistence baseline: "repeat the previous code", i.e. predict target t as the code of
  frame t-1 (in frame order). It is never right on the first frame (no previous code) or on
  the EOS target (it never predicts EOS). A model that learned only the acoustics of speech
  (codes change slowly) beats it by little.
- AR stopping: the first teacher-forced step whose argmax is EOS against the true end; the
  error is in frames (steps x frames per step), positive = stops late; ``missed`` = no step
  predicts EOS at all (the error is then counted as one step past the end).
- NAR stage j (Sec 4.2.2, 0-based codebook ``j`` in 1..Q-1): codebook j of the target frames
  given the NAR's own prompt policy (seeded) and codebooks < j. Its persistence baseline is
  "the same code as in the previous frame of codebook j" (never right on the first target
  frame); note the NAR itself never sees codebook j, so this baseline has information the NAR
  lacks; it is a reference for how predictable the codebook is, not a competitor.
- NAR mel gain (codecs whose codes are vectors, e.g. the mel-RVQ codec; F mel bins): per stage
  j, the squared error in the codec's normalised mel space (mean over F per frame) of the
  reconstruction from the true codebooks < j alone (``prefix``), plus codebook j's vector of
  the NAR's argmax (``argmax``) or its softmax-expected vector (``expected``), and with the
  true code j (``truth``), against the reconstruction from all true codebooks. Code accuracy
  near chance hides whether the NAR's codes still help; ``argmax - prefix`` < 0 says they do.
- A phoneme-aligned NAR (VALL-E R) reads each frame's phoneme id, built from the batch's
  ``durations`` as its own training loss builds it.

Only public parts of the decoders are used: the AR's ``layout``, ``with_bos``, ``eos_id``,
``forward``; the NAR's ``prompt`` policy and ``forward``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from valle.data import batch as B_

__all__ = [
    "TokenTally",
    "ARItem",
    "ar_teacher_forced",
    "nar_teacher_forced",
    "ar_targets",
    "NARStageOutput",
    "nar_stage_logits",
    "nar_tally",
    "MEL_ERRORS",
    "MelErrorTally",
    "has_codebook_vectors",
    "nar_mel_errors",
]


@dataclass
class TokenTally:
    """Sums over scored targets: cross entropy (nats), model hits, baseline hits."""

    loss_sum: float = 0.0
    count: int = 0
    correct: int = 0
    baseline_correct: int = 0

    def add(self, other: TokenTally) -> None:
        self.loss_sum += other.loss_sum
        self.count += other.count
        self.correct += other.correct
        self.baseline_correct += other.baseline_correct

    @property
    def loss(self) -> float:
        return self.loss_sum / self.count if self.count else float("nan")

    @property
    def acc(self) -> float:
        return self.correct / self.count if self.count else float("nan")

    @property
    def baseline_acc(self) -> float:
        return self.baseline_correct / self.count if self.count else float("nan")


@dataclass
class ARItem:
    """One utterance's teacher-forced AR figures."""

    tally: TokenTally = field(default_factory=TokenTally)
    eos_error_frames: int = 0  # first argmax-EOS step - true end, in frames (+ = late)
    eos_missed: bool = False  # no step predicted EOS


def ar_targets(ar: Any, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(audio_in (B, N+1, *E), in_lens (B,), targets (B, N+1, *E), mask (B, N+1, *E))``.

    The inputs are ``[BOS, s_1 .. s_N]``, the targets ``[s_1 .. s_N, EOS]`` as in the AR's
    loss; ``mask`` marks the scored targets. The layout's own ``teacher_forcing`` gives them
    where it has one (the AR's loss uses it), else they are built from its steps.
    """
    own = getattr(ar.layout, "teacher_forcing", None)
    if own is not None:
        tf = own(batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS])
        return tf.inputs, tf.lens, tf.targets, tf.mask
    steps, lens, valid = ar.layout.to_steps(batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS])
    audio_in, in_lens = ar.with_bos(steps, lens)  # (B, N+1, *E)
    rows = torch.arange(steps.shape[0], device=lens.device)
    targets = torch.cat([steps, torch.zeros_like(audio_in[:, :1])], dim=1)  # (B, N+1, *E)
    targets[rows, lens] = ar.eos_id
    mask = torch.cat([valid, torch.zeros_like(valid[:, :1])], dim=1)  # (B, N+1, *E)
    mask[rows, lens] = True
    return audio_in, in_lens, targets, mask


def _previous_in_frame_order(targets: Tensor, eos: int) -> Tensor:
    """Code of the previous frame for every target (B, N+1, *E); -1 where there is none."""
    B = targets.shape[0]
    flat = targets.reshape(B, -1)  # (B, (N+1) * G) in frame order
    prev = torch.cat([flat.new_full((B, 1), -1), flat[:, :-1]], dim=1)
    prev = prev.masked_fill(prev == eos, -1)  # EOS is not a code to repeat
    return prev.reshape(targets.shape)


@torch.no_grad()
def ar_teacher_forced(
    ar: Any, batch: Mapping[str, Any], logits: Tensor | None = None
) -> list[ARItem]:
    """Per-utterance teacher-forced AR loss, accuracy, persistence hits and EOS position.

    ``logits`` (B, N+1, *E, V): the AR's output for :func:`ar_targets`' inputs when the
    caller already ran it (e.g. under an attention probe); otherwise the AR is run here.
    """
    audio_in, in_lens, targets, mask = ar_targets(ar, batch)
    if logits is None:
        logits = ar(
            batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS], audio_in, in_lens, batch.get(B_.LANGUAGE)
        )
    V = logits.shape[-1]
    nll = F.cross_entropy(
        logits.float().reshape(-1, V), targets.reshape(-1), reduction="none"
    ).reshape(targets.shape)  # (B, N+1, *E)
    pred = logits.argmax(-1)  # (B, N+1, *E)
    prev = _previous_in_frame_order(targets, int(ar.eos_id))
    per_step = int(ar.layout.frames_per_step)
    B = targets.shape[0]
    dims = tuple(range(1, targets.dim()))
    loss_sum = (nll * mask).sum(dims).tolist()
    count = mask.sum(dims).tolist()
    correct = ((pred == targets) & mask).sum(dims).tolist()
    base = ((prev == targets) & mask).sum(dims).tolist()
    is_eos = pred == ar.eos_id  # (B, N+1, *E)
    if is_eos.dim() > 2:
        is_eos = is_eos.flatten(2).any(-1)  # (B, N+1): a step holding an EOS ends the item
    ends = (in_lens - 1).tolist()  # (B,) index of the EOS target
    items = []
    for b in range(B):
        end = int(ends[b])
        hits = torch.nonzero(is_eos[b, : end + 1]).flatten()
        missed = hits.numel() == 0
        first = end + 1 if missed else int(hits[0])
        items.append(
            ARItem(
                TokenTally(float(loss_sum[b]), int(count[b]), int(correct[b]), int(base[b])),
                eos_error_frames=(first - end) * per_step,
                eos_missed=missed,
            )
        )
    return items


@dataclass(frozen=True)
class NARStageOutput:
    """One teacher-forced NAR pass on codebook ``stage``: ``logits`` (B, T, V) over the target
    frames, their ground-truth ``target_codes`` (B, T, Q) and the scored frames ``mask``
    (B, T) (a row's frames, less those its prompt policy copied into the prompt)."""

    stage: int
    logits: Tensor
    target_codes: Tensor
    mask: Tensor


@torch.no_grad()
def nar_stage_logits(
    nar: Any,
    batch: Mapping[str, Any],
    stage: int,
    generator: torch.Generator | None = None,
) -> NARStageOutput:
    """The NAR's teacher-forced logits on codebook ``stage`` (0-based, 1..Q-1).

    The prompt comes from the NAR's own training prompt policy, drawn with ``generator``;
    a NAR that reads per-frame inputs (VALL-E R's phoneme ids from the batch's durations) gets
    them as in its training loss (``nar.teacher_forcing_split``).
    """
    split, cond = nar.teacher_forcing_split(batch, generator)
    language_of = getattr(nar, "batch_language", None)
    language = language_of(batch) if language_of is not None else batch.get(B_.LANGUAGE)
    kwargs = {} if cond is None else {"audio_cond": cond}
    logits = nar(
        batch[B_.TEXT_TOKENS],
        batch[B_.TEXT_LENS],
        split.prompt_codes,
        split.prompt_lens,
        split.target_codes,
        split.target_lens,
        stage,
        language,
        **kwargs,
    )  # (B, T, V)
    return NARStageOutput(stage, logits, split.target_codes, split.target_mask())


def nar_tally(out: NARStageOutput) -> TokenTally:
    """Loss / accuracy of one NAR pass and its previous-frame baseline (module docstring)."""
    targets = out.target_codes[..., out.stage]  # (B, T)
    mask, logits = out.mask, out.logits
    V = logits.shape[-1]
    nll = F.cross_entropy(logits.float().reshape(-1, V), targets.reshape(-1), reduction="none")
    prev = torch.cat([targets.new_full((targets.shape[0], 1), -1), targets[:, :-1]], dim=1)
    return TokenTally(
        loss_sum=float((nll.reshape(targets.shape) * mask).sum()),
        count=int(mask.sum()),
        correct=int(((logits.argmax(-1) == targets) & mask).sum()),
        baseline_correct=int(((prev == targets) & mask).sum()),
    )


@torch.no_grad()
def nar_teacher_forced(
    nar: Any,
    batch: Mapping[str, Any],
    stage: int,
    generator: torch.Generator | None = None,
) -> TokenTally:
    """NAR loss/accuracy on codebook ``stage`` (0-based) and the previous-frame baseline.

    The prompt comes from the NAR's own training prompt policy, drawn with ``generator``.
    """
    return nar_tally(nar_stage_logits(nar, batch, stage, generator))


# --------------------------------------------------------------------------- mel gain

MEL_ERRORS = ("prefix", "argmax", "expected", "truth")


def has_codebook_vectors(codec: Any) -> bool:
    """Whether ``codec`` maps codes to vectors the mel gain can measure: a
    ``codes_to_normalized(codes (T, Q')) -> (T, F)`` and ``codebooks`` (Q, V, F) (the mel-RVQ
    codec); codes-only codecs (EnCodec) have neither."""
    return callable(getattr(codec, "codes_to_normalized", None)) and isinstance(
        getattr(codec, "codebooks", None), Tensor
    )


@dataclass
class MelErrorTally:
    """Squared errors (mean over the F bins, summed over frames) of one NAR stage's
    reconstructions, keyed by :data:`MEL_ERRORS`, and the frames counted."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MEL_ERRORS, 0.0))
    count: int = 0

    def add(self, other: MelErrorTally) -> None:
        for k in MEL_ERRORS:
            self.sums[k] += other.sums[k]
        self.count += other.count

    @property
    def mse(self) -> dict[str, float]:
        """Mean squared error per frame of each reconstruction (NaN with no frames)."""
        return {k: self.sums[k] / self.count if self.count else float("nan") for k in MEL_ERRORS}

    @property
    def gain(self) -> float:
        """``argmax`` minus ``prefix``: negative when the NAR's code brings the frame closer."""
        m = self.mse
        return m["argmax"] - m["prefix"]


@torch.no_grad()
def nar_mel_errors(codec: Any, out: NARStageOutput) -> MelErrorTally:
    """How far each reconstruction of the scored target frames is from the ground truth's,
    in the codec's normalised mel space (target: all Q true codebooks,
    ``codec.codes_to_normalized``). For stage j: ``prefix`` = true codebooks < j; ``argmax``
    = prefix + codebook j's vector of the NAR's argmax; ``expected`` = prefix +
    softmax(logits) @ codebooks[j]; ``truth`` = true codebooks <= j.

    Raises ValueError when the codec's codebooks do not fit the NAR's codes.
    """
    j, codes = out.stage, out.target_codes
    books = codec.codebooks  # (Q, V, F)
    Q = codes.shape[-1]
    if books.dim() != 3 or books.shape[0] < Q or out.logits.shape[-1] < books.shape[1]:
        raise ValueError(
            f"the codec's codebooks {tuple(books.shape)} (Q, V, F) do not fit the NAR's "
            f"{Q} codebooks x {out.logits.shape[-1]} classes: pass the codec the model's codes "
            "were made with"
        )
    mask = out.mask.bool()
    sel = codes[mask].to(books.device).long()  # (N, Q)
    if sel.shape[0] == 0:
        return MelErrorTally()
    logits = out.logits[mask].float().to(books.device)[:, : books.shape[1]]  # (N, V)
    book = books[j].float()  # (V, F)
    target = codec.codes_to_normalized(sel).float()  # (N, F)
    prefix = codec.codes_to_normalized(sel[:, :j]).float()
    recon = {
        "prefix": prefix,
        "argmax": prefix + book[logits.argmax(-1)],
        "expected": prefix + logits.softmax(-1) @ book,
        "truth": codec.codes_to_normalized(sel[:, : j + 1]).float(),
    }
    sums = {k: float((m - target).pow(2).mean(-1).sum()) for k, m in recon.items()}
    return MelErrorTally(sums, int(sel.shape[0]))
