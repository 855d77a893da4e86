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

__all__ = ["TokenTally", "ARItem", "ar_teacher_forced", "nar_teacher_forced", "ar_targets"]


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
    split = nar.prompt(batch, generator)
    logits = nar(
        batch[B_.TEXT_TOKENS],
        batch[B_.TEXT_LENS],
        split.prompt_codes,
        split.prompt_lens,
        split.target_codes,
        split.target_lens,
        stage,
        batch.get(B_.LANGUAGE),
    )  # (B, T, V)
    targets = split.target_codes[..., stage]  # (B, T)
    mask = split.target_mask()  # (B, T)
    V = logits.shape[-1]
    nll = F.cross_entropy(logits.float().reshape(-1, V), targets.reshape(-1), reduction="none")
    prev = torch.cat([targets.new_full((targets.shape[0], 1), -1), targets[:, :-1]], dim=1)
    return TokenTally(
        loss_sum=float((nll.reshape(targets.shape) * mask).sum()),
        count=int(mask.sum()),
        correct=int(((logits.argmax(-1) == targets) & mask).sum()),
        baseline_correct=int(((prev == targets) & mask).sum()),
    )
