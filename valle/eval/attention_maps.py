"""Text-to-audio attention of the AR: maps per layer, monotonicity / diagonality scores, images.

Shape legend: B batch, S text tokens, N audio queries (BOS + codes), Y layers.

A TTS model that reads its text attends, at each audio step, to the phoneme being spoken, so
its audio->text attention is a roughly diagonal band moving forward through the text
(Tacotron-style alignment). A model that ignores its text attends to it diffusely or not at
all. The maps come from :class:`~valle.modules.attention_probe.AttentionProbe` during one
teacher-forced AR pass: per layer, averaged over heads, the block of audio queries (the AR's
inputs ``[BOS, c_1 .. c_N]``) x text keys (the item's own phonemes). The AR packs each row as
``[text (S, right-padded) ; audio]`` (:mod:`valle.ar.decoder`), so that block is
``[S:, :S]`` of the full map.

Scores of one (N, S) map ``a`` (:func:`alignment_scores`). Each row is first renormalised to
sum to 1 over the text keys (the audio also attends to earlier audio; ``text_mass`` keeps the
share the text got, before renormalisation):

- centroid ``c_t = sum_s s * a[t, s]``: the attention-weighted mean text position (tokens)
  of audio step t;
- ``monotonic``: the fraction of consecutive steps whose centroid does not move backwards by
  more than ``tolerance`` tokens (``c_t - c_{t-1} >= -tolerance``). A flat map (constant
  centroid) passes it trivially, so read it with the next two;
- ``spearman`` / ``pearson``: rank / linear correlation of ``c_t`` with ``t`` (0 when the
  centroid does not move at all); 1 for an alignment that only moves forward;
- ``diagonal_focus``: the mean over steps of the attention mass within ``band * S`` tokens
  (at least 1) of the straight diagonal ``d_t = t * (S - 1) / (N - 1)`` from the first text
  token at the first step to the last at the last step. A uniform map scores about
  ``2 * band``, a sharp diagonal 1.

A reading model shows high ``monotonic``, correlations near 1 and a ``diagonal_focus`` well
above ``2 * band`` in at least one layer.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from valle.data import batch as B_
from valle.modules.attention_probe import AttentionProbe

logger = logging.getLogger(__name__)

__all__ = [
    "AlignmentScores",
    "alignment_scores",
    "mean_scores",
    "text_centroids",
    "ar_text_attention",
    "attention_figure",
    "save_attention_png",
]

TOLERANCE = 1.0  # tokens a centroid may step back and still count as monotonic
BAND = 0.1  # half-width of the diagonal band, as a fraction of the text length


@dataclass(frozen=True)
class AlignmentScores:
    """Scores of one audio->text attention map (see the module docstring)."""

    monotonic: float
    spearman: float
    pearson: float
    diagonal_focus: float
    text_mass: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _renormalised(attn: Tensor) -> Tensor:
    """Rows (N, S) rescaled to sum to 1 (rows with no text mass become uniform)."""
    attn = attn.double().clamp(min=0)
    total = attn.sum(-1, keepdim=True)  # (N, 1)
    uniform = torch.full_like(attn, 1.0 / attn.shape[-1])
    return torch.where(total > 1e-12, attn / total.clamp(min=1e-12), uniform)


def text_centroids(attn: Tensor) -> Tensor:
    """Attention-weighted mean text position (tokens, 0-based) of each audio step: (N,)."""
    a = _renormalised(attn)  # (N, S)
    pos = torch.arange(a.shape[-1], dtype=a.dtype)
    return (a * pos).sum(-1)


def _pearson(x: Tensor, y: Tensor) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = float(x.norm() * y.norm())
    return float((x * y).sum()) / den if den > 0 else 0.0


def _ranks(x: Tensor) -> Tensor:
    """Ranks with ties averaged (1-based), float64."""
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks[order] = torch.arange(1, len(x) + 1, dtype=torch.float64)
    _, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, inverse, ranks)
    return (sums / counts)[inverse]


def alignment_scores(
    attn: Tensor, tolerance: float = TOLERANCE, band: float = BAND
) -> AlignmentScores:
    """Scores of one map ``attn`` (N audio steps, S text tokens); see the module docstring."""
    if attn.dim() != 2 or attn.shape[0] < 1 or attn.shape[1] < 1:
        raise ValueError(f"expected an (N, S) attention map, got shape {tuple(attn.shape)}")
    N, S = attn.shape
    text_mass = float(attn.double().sum(-1).mean())
    a = _renormalised(attn)  # (N, S)
    c = (a * torch.arange(S, dtype=a.dtype)).sum(-1)  # (N,)
    steps = torch.arange(N, dtype=a.dtype)
    if N > 1:
        monotonic = float((c[1:] - c[:-1] >= -tolerance).double().mean())
    else:
        monotonic = 1.0
    # a centroid that does not move has no trend (round-off must not invent one)
    moves = N > 1 and float(c.max() - c.min()) > 1e-6 * max(S, 1)
    pearson = _pearson(steps, c) if moves else 0.0
    spearman = _pearson(_ranks(steps), _ranks(c)) if moves else 0.0
    diag = steps * (S - 1) / (N - 1) if N > 1 else torch.zeros(1, dtype=a.dtype)  # (N,)
    half = max(1.0, band * S)
    within = (torch.arange(S, dtype=a.dtype)[None, :] - diag[:, None]).abs() <= half  # (N, S)
    focus = float((a * within).sum(-1).mean())
    return AlignmentScores(monotonic, spearman, pearson, focus, text_mass)


def mean_scores(scores: Sequence[AlignmentScores]) -> AlignmentScores:
    """Field-wise mean of several maps' scores (NaN when empty)."""
    if not scores:
        nan = math.nan
        return AlignmentScores(nan, nan, nan, nan, nan)
    n = len(scores)
    fields = AlignmentScores.__dataclass_fields__
    return AlignmentScores(**{f: sum(getattr(s, f) for s in scores) / n for f in fields})


def ar_text_attention(
    ar: Any,
    batch: Mapping[str, Any],
    audio_in: Tensor,
    in_lens: Tensor,
) -> tuple[Tensor, list[Tensor]]:
    """One teacher-forced AR pass recording the audio->text attention.

    Args:
        ar: the AR decoder (its ``backbone.layers[i].attn`` are probed).
        batch: the batch (text tokens and lengths, language).
        audio_in: (B, N+1, *E) AR inputs ``[BOS, ...]``, ``in_lens`` (B,) their lengths
            (:func:`valle.eval.teacher_forcing.ar_targets`).
    Returns:
        the logits of the pass and, per item, a (Y, N_b+1, S_b) tensor of the head-averaged
        attention of its audio queries on its text keys in each layer (no items when the AR
        has no ``backbone.layers`` to probe).
    """
    text, text_lens = batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS]
    S = text.shape[1]
    layers = getattr(getattr(ar, "backbone", None), "layers", None)
    if layers is None:  # a decoder without probe-able layers: no maps, the logits still count
        logger.warning("%s has no backbone.layers: no attention maps", type(ar).__name__)
        return ar(text, text_lens, audio_in, in_lens, batch.get(B_.LANGUAGE)), []
    probe = AttentionProbe(layers, queries=slice(S, None), keep=lambda p: p[..., :S])
    with probe:
        logits = ar(text, text_lens, audio_in, in_lens, batch.get(B_.LANGUAGE))
    if any(m is None for m in probe.maps):
        raise RuntimeError("the attention probe recorded nothing; did the AR's layers change?")
    maps = torch.stack([m for m in probe.maps if m is not None], dim=1)  # (B, Y, N+1, S)
    items = [
        maps[b, :, : int(in_lens[b]), : int(text_lens[b])] for b in range(maps.shape[0])
    ]  # B x (Y, N_b+1, S_b)
    return logits, items


def attention_figure(
    maps: Tensor, title: str = "", scores: Sequence[AlignmentScores] | None = None
) -> Any:
    """A matplotlib figure (no pyplot state) of the maps (Y, N, S): one panel per layer,
    audio steps on x, text tokens on y (the alignment reads bottom-left to top-right)."""
    from matplotlib.figure import Figure

    Y = maps.shape[0]
    fig = Figure(figsize=(4.0 * Y, 3.2), dpi=100)
    for y in range(Y):
        ax = fig.add_subplot(1, Y, y + 1)
        im = ax.imshow(
            maps[y].T.float().numpy(), origin="lower", aspect="auto", interpolation="none"
        )
        label = f"layer {y}"
        if scores is not None:
            s = scores[y]
            label += f"\nmono {s.monotonic:.2f} rho {s.spearman:.2f} diag {s.diagonal_focus:.2f}"
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("audio step")
        if y == 0:
            ax.set_ylabel("text token")
        fig.colorbar(im, ax=ax)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.97, bottom=0.16, top=0.78, wspace=0.3)  # fixed
    return fig


def save_attention_png(
    maps: Tensor,
    path: str | os.PathLike[str],
    title: str = "",
    scores: Sequence[AlignmentScores] | None = None,
) -> Path:
    """Write :func:`attention_figure` as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    attention_figure(maps, title, scores).savefig(path)
    return path
