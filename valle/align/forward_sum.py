"""The blank-free forward-sum loss: -log P(frames | tokens) over all monotonic segmentations.

Shape legend: B batch, T frames, S tokens, V classes.

The Viterbi of :mod:`valle.align.viterbi` picks the best segmentation in which every token
occupies >= 1 contiguous frames (no blank). This loss trains the same per-frame token scores
on the sum over all such segmentations (the forward algorithm of a left-to-right HMM with one
state per token; as in the alignment learning of RAD-TTS, Shih et al. 2021, Sec 3.2, but over
phoneme classes): ``alpha[t, s] = logaddexp(alpha[t-1, s], alpha[t-1, s-1]) + e[t, s]``.
Trained beside CTC, it makes the non-blank posteriors say which token a frame *belongs* to
(what durations need), where CTC alone only learns one spike per token.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["diagonal_prior", "forward_sum_loss"]

_NEG = -1e4  # a finite "impossible" score (avoids inf - inf in the gradients)


def diagonal_prior(frame_lens: Tensor, target_lens: Tensor, width: float = 0.1) -> Tensor:
    """Log-prior ``(B, T, S)`` favouring a constant speaking rate: token ``s`` of ``S`` near
    frame ``t`` of ``T`` when ``s / S ~ t / T`` (a Gaussian of ``width`` in relative position).

    The alignment prior of RAD-TTS (Shih et al. 2021, Sec 3.3) in another form: added to the
    scores early in training, it gets a flat-started model past "every frame is the most common
    phoneme", then fades out (:class:`valle.align.training.TrainConfig` ``prior_steps``).
    """
    T, S = int(frame_lens.max()), int(target_lens.max())
    t = (torch.arange(T, device=frame_lens.device) + 0.5)[None, :] / frame_lens[:, None]  # (B, T)
    s = (torch.arange(S, device=frame_lens.device) + 0.5)[None, :] / target_lens[:, None]  # (B, S)
    return -0.5 * ((t[:, :, None] - s[:, None, :]) / width) ** 2  # (B, T, S)


def forward_sum_loss(
    scores: Tensor,
    targets: Tensor,
    frame_lens: Tensor,
    target_lens: Tensor,
    prior: Tensor | None = None,
) -> Tensor:
    """Mean negative log-likelihood per frame of blank-free monotonic segmentations.

    Args:
        scores: ``(B, T, V)`` log-scores of every class at every frame.
        targets: ``(B, S)`` long token ids (padding ignored past ``target_lens``).
        frame_lens: ``(B,)`` valid frames per row (``>= target_lens``).
        target_lens: ``(B,)`` tokens per row (``>= 1``).
        prior: optional ``(B, T, S)`` log-prior added to the token scores (training aid).
    Returns:
        scalar: ``-sum_b log P_b / sum_b T_b``.
    """
    B, T, _ = scores.shape
    S = targets.shape[1]
    e = scores.gather(2, targets.unsqueeze(1).expand(B, T, S))  # (B, T, S)
    if prior is not None:
        e = e + prior
    s_idx = torch.arange(S, device=scores.device)
    e = e.masked_fill(s_idx[None, None, :] >= target_lens[:, None, None], _NEG)
    alpha = torch.full((B, S), _NEG, device=scores.device, dtype=scores.dtype)
    alpha = torch.cat([e[:, 0, :1], alpha[:, 1:]], dim=1)  # (B, S) token 0 at frame 0
    pad = torch.full((B, 1), _NEG, device=scores.device, dtype=scores.dtype)
    alphas = [alpha]
    for t in range(1, T):
        moved = torch.cat([pad, alpha[:, :-1]], dim=1)  # (B, S) arrive from token s-1
        alpha = torch.logaddexp(alpha, moved) + e[:, t]  # (B, S)
        alphas.append(alpha)
    stacked = torch.stack(alphas, dim=1)  # (B, T, S)
    rows = torch.arange(B, device=scores.device)
    last = stacked[rows, frame_lens - 1, target_lens - 1]  # (B,)
    return -last.sum() / frame_lens.sum().clamp_min(1)
