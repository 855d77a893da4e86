"""Teacher-forced measurements of a continuous mel AR (MELLE) beside a trivial baseline.

Shape legend: B batch, S text tokens, T mel frames, F mel bins, r frames per step,
N AR steps, E = r * F step width.

What is counted (the frames :meth:`valle.variants.melle.Melle.loss` scores):

- the layout's teacher forcing (:meth:`valle.ar.latent.MelFrameLayout.teacher_forcing`):
  inputs ``[BOS, s_1 .. s_{N-1}]``, targets ``[s_1 .. s_N]``; a row's ``T mod r`` first
  frames are not scored (the layout drops them).
- ``loss``: the regression loss of MELLE Sec 3.3 (:func:`valle.ar.latent.regression_loss`:
  L1 + squared L2 per frame, summed over the F bins) of ``y'`` against the target frame,
  averaged over the scored frames. The run is deterministic: ``y' = mu + MLP(mu)`` (the
  latent's mean, no noise) and the pre-net's inference dropout is switched off
  (:func:`deterministic_prenet`; its masks are rescaled by ``1 / (1 - p)`` in the model, so
  no dropout is its expectation). ``y'`` is the AR's own output, before the post-net.
- persistence baseline: "repeat the previous ground-truth frame": frame t predicted as the
  target frame t-1, with the same per-frame loss, on every scored frame but each row's first
  (which has no previous scored frame). With r > 1 this baseline sees frames inside the
  current step that the model does not; it is a reference for how slowly the frames change.
- stopping: the first teacher-forced step whose stop probability ``sigmoid(logit)`` exceeds
  the threshold of the AR's :class:`~valle.ar.stops.StopFlag` against the true last step
  (``N - 1``); the error is in frames (steps x r), positive = stops late; ``missed`` = no
  step raises the flag (the error is then counted as one step past the end).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from valle.data import batch as B_

__all__ = [
    "RegressionTally",
    "MelItem",
    "deterministic_prenet",
    "frame_regression",
    "mel_targets",
    "mel_teacher_forced",
]


@dataclass
class RegressionTally:
    """Sums over scored frames: the model's per-frame regression loss and the persistence
    baseline's (over its own frames, all but each row's first)."""

    loss_sum: float = 0.0
    count: int = 0
    baseline_sum: float = 0.0
    baseline_count: int = 0

    def add(self, other: RegressionTally) -> None:
        self.loss_sum += other.loss_sum
        self.count += other.count
        self.baseline_sum += other.baseline_sum
        self.baseline_count += other.baseline_count

    @property
    def loss(self) -> float:
        return self.loss_sum / self.count if self.count else float("nan")

    @property
    def baseline_loss(self) -> float:
        return self.baseline_sum / self.baseline_count if self.baseline_count else float("nan")


@dataclass
class MelItem:
    """One utterance's teacher-forced figures."""

    tally: RegressionTally = field(default_factory=RegressionTally)
    stop_error_frames: int = 0  # first flagged step - true last step, in frames (+ = late)
    stop_missed: bool = False  # no step raised the stop flag


def frame_regression(pred: Tensor, target: Tensor) -> Tensor:
    """Per-frame ``||y - pred||_1 + ||y - pred||_2^2`` (B, T) of frames (B, T, F), as
    :func:`valle.ar.latent.regression_loss` before its mean."""
    d = (pred - target).float()
    return d.abs().sum(-1) + d.pow(2).sum(-1)


@contextlib.contextmanager
def deterministic_prenet(ar: Any) -> Iterator[None]:
    """Switch off the AR input embedding's inference dropout inside the block (a
    :class:`~valle.ar.latent.PreNet` has ``inference_dropout``; other embeddings are left
    as they are)."""
    emb = getattr(ar, "audio_embedding", None)
    if not hasattr(emb, "inference_dropout"):  # a ConditionedInput wraps the pre-net
        emb = getattr(emb, "inner", emb)
    old = getattr(emb, "inference_dropout", None)
    if old is None:
        yield
        return
    emb.inference_dropout = 0.0  # type: ignore[union-attr]
    try:
        yield
    finally:
        emb.inference_dropout = old  # type: ignore[union-attr]


def mel_targets(ar: Any, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(audio_in (B, N, E), lens (B,) steps, targets (B, N, E), mask (B, N, E))`` of the
    layout's teacher forcing on ``batch["mel"]`` (see the module docstring)."""
    if B_.MEL not in batch:
        raise ValueError("the batch has no 'mel' frames (the model's MelFrames featurizer)")
    tf = ar.layout.teacher_forcing(batch[B_.MEL], batch[B_.lens_key(B_.MEL)])
    return tf.inputs, tf.lens, tf.targets, tf.mask


@torch.no_grad()
def mel_teacher_forced(
    ar: Any, batch: Mapping[str, Any], out: Tensor | None = None, threshold: float | None = None
) -> list[MelItem]:
    """Per-utterance regression loss of ``y'`` (mean latent), persistence loss and stop error.

    ``out`` (B, N, 2E + 1): the AR's head output for :func:`mel_targets`' inputs when the
    caller already ran it (e.g. under an attention probe, inside :func:`deterministic_prenet`);
    otherwise the AR is run here without pre-net dropout. ``threshold``: the stop probability
    that ends a row (default: the AR's ``stop.threshold``).
    """
    audio_in, lens, targets, mask = mel_targets(ar, batch)
    if out is None:
        with deterministic_prenet(ar):
            out = ar(
                batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS], audio_in, lens, batch.get(B_.LANGUAGE)
            )
    if threshold is None:
        threshold = float(getattr(ar.stop, "threshold", 0.5))
    layout, head = ar.layout, ar.head
    r = int(layout.frames_per_step)
    parts = head.split(out)
    y1 = layout.from_steps(head.frames(parts.mu))  # (B, T', F): y' of the mean latent
    y = layout.from_steps(targets)  # (B, T', F)
    frame_mask = mask[..., 0].repeat_interleave(r, 1)  # (B, T')
    per = frame_regression(y1, y)  # (B, T')
    base = frame_regression(y[:, :-1], y[:, 1:])  # (B, T'-1): frame t-1 predicts frame t
    base_mask = frame_mask[:, 1:] & frame_mask[:, :-1]
    loss_sum = (per * frame_mask).sum(1).tolist()
    count = frame_mask.sum(1).tolist()
    base_sum = (base * base_mask).sum(1).tolist()
    base_count = base_mask.sum(1).tolist()
    flagged = torch.sigmoid(parts.stop.float()) > threshold  # (B, N)
    items = []
    for b in range(y.shape[0]):
        end = int(lens[b]) - 1  # the true last step
        hits = torch.nonzero(flagged[b, : end + 1]).flatten()
        missed = hits.numel() == 0
        first = end + 1 if missed else int(hits[0])
        items.append(
            MelItem(
                RegressionTally(
                    float(loss_sum[b]), int(count[b]), float(base_sum[b]), int(base_count[b])
                ),
                stop_error_frames=(first - end) * r,
                stop_missed=missed,
            )
        )
    return items
