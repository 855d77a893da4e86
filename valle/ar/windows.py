"""Windows of merged codes: phoneme durations counted in AR steps, and the codec's merge rate.

Shape legend: B batch, S text tokens, T frames, W windows (AR steps) = ceil(T / m).

VALL-E R's codec merging (Sec 3.1) makes codebook 1 constant on windows of ``m`` frames
(``[k m, (k+1) m)``, counted from the utterance's first frame; the last window may be
partial), and its AR predicts one codebook-1 code per window
(:class:`~valle.ar.layouts.MergedFirstCodebookLayout`). Its phoneme pointer then moves once
per window, so the aligner's durations (frames per phoneme) must be counted in windows:
:func:`window_durations`; the NAR reads the per-frame alignment those windows imply
(:func:`snap_durations`). :func:`check_merge_rate` compares a model's AR rate with the merge
rate the codec recorded (``codec.json`` / the checkpoint's ``"codec"`` entry, option
``merge_rates``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "check_merge_rate",
    "codec_merge_rate",
    "layout_rate",
    "snap_durations",
    "window_durations",
]

logger = logging.getLogger(__name__)


def window_durations(durations: Tensor, lens: Tensor, rate: int) -> Tensor:
    """Frames per phoneme (B, S) of rows of ``lens`` (B,) frames -> windows per phoneme (B, S).

    The rule:

    1. Window ``k`` (frames ``[k m, (k+1) m)``) belongs to the phoneme of its *first* frame
       ``k m``, so phoneme i's windows end at ``ceil(E_i / m)``, ``E_i`` its cumulative frame
       end. That is the code the AR step reads (codebook 1 at frame ``k m``) and the
       alignment read at frames ``0, m, 2m, ...``.
    2. A phoneme with frames that got no window (it lies inside one window with a neighbour)
       is fixed monotonically: every boundary is pushed right just enough that each phoneme
       with frames keeps at least one window, and pulled left just enough that the later ones
       still fit in the row's ``W = ceil(T / m)`` windows (closed form: with ``c_i`` the
       phonemes with frames up to i and ``C`` all of them, the end of phoneme i is
       ``c_i + min(max_{j <= i}(ceil(E_j / m) - c_j), W - C)``).

    So every phoneme with frames gets >= 1 window, a phoneme of 0 frames (padding, or a token
    the aligner gave none) gets 0, the windows sum to ``W`` and boundaries never go back. At
    ``rate`` 1 this is the identity. A row with more phonemes (with frames) than windows
    cannot give each one a step: :class:`ValueError` naming the row.

    Raises:
        ValueError: negative durations, durations that do not sum to ``lens``, ``rate`` < 1,
            or more phonemes than windows.
    """
    if rate < 1:
        raise ValueError(f"the window rate must be >= 1, got {rate}")
    d = durations.long()  # (B, S)
    if bool((d < 0).any()) or not torch.equal(d.sum(-1), lens.long()):
        raise ValueError(
            "durations must be >= 0 frames per phoneme and sum to each row's frames; "
            "re-run the aligner with this codec"
        )
    if rate == 1:
        return d
    ends = torch.div(d.cumsum(-1) + rate - 1, rate, rounding_mode="floor")  # (B, S) ceil(E/m)
    counts = (d > 0).long().cumsum(-1)  # (B, S) c_i
    W = torch.div(lens.long() + rate - 1, rate, rounding_mode="floor")  # (B,)
    slack = W - counts[:, -1] if d.shape[1] else W  # (B,) W - C
    if bool((slack < 0).any()):
        b = int((slack < 0).nonzero()[0, 0])
        raise ValueError(
            f"row {b}: {int(counts[b, -1])} phonemes with frames but only {int(W[b])} windows "
            f"of {rate} frames ({int(lens[b])} frames): at AR rate {rate} every phoneme needs "
            f"one step of {rate} frames; give it more frames (a slower speed, longer "
            "durations) or use a model with ar.layout.rate=1"
        )
    pushed = torch.cummax(ends - counts, dim=-1).values  # (B, S) push right
    fixed = counts + torch.minimum(pushed, slack[:, None])  # (B, S) pull left
    return fixed.diff(dim=-1, prepend=fixed.new_zeros(fixed.shape[0], 1))  # (B, S)


def layout_rate(layout: Any) -> int:
    """Frames per AR step of a layout config or layout that takes one code per window
    (``one_code_per_window``; ``first_codebook``: 1, ``merged_first_codebook``: its rate);
    1 for any other layout."""
    return int(getattr(layout, "rate", 1))


def codec_merge_rate(codec: Any) -> int:
    """The first codebook's merge rate ``m_1`` a codec recorded in its loader options
    (``options["merge_rates"]``): those of a ``CodecInfo``, of its dict (``codec.json``, a
    checkpoint's ``"codec"`` entry) or of a codec object (a merged codec declares
    ``options``); 1 for a codec that does not merge (no options, or no ``merge_rates``)."""
    options = codec.get("options") if isinstance(codec, Mapping) else getattr(codec, "options", None)
    rates = (options or {}).get("merge_rates")
    if not rates:
        return 1
    if not isinstance(rates, Sequence):
        raise ValueError(f"merge_rates must be a list of integers, got {rates!r}")
    return int(rates[0])


def check_merge_rate(model_config: Any, codec: Any, *, strict: bool = True) -> None:
    """Compare the AR's frames per step with the codec's first-codebook merge rate.

    ``model_config``: a variant config with an ``ar.layout`` section (nothing is checked
    without an AR or for a layout that does not declare ``one_code_per_window``, e.g. VALL-E
    2's groups of codes);
    ``codec``: what :func:`codec_merge_rate` reads.

    - A merged layout (``merged_first_codebook``, rate r > 1) on codes the codec did not merge
      at r: its steps would skip frames whose codes differ. :class:`ValueError` when
      ``strict`` (training), else a warning (inference, where the codec only decodes).
    - A one-frame-per-step AR on codes merged at m > 1: it works, but makes m times the steps
      the codes need; a warning says how to run the half-rate AR.
    """
    ar = getattr(model_config, "ar", None)
    layout = getattr(ar, "layout", None)
    if layout is None or not getattr(layout, "one_code_per_window", False):
        return
    rate, merged = layout_rate(layout), codec_merge_rate(codec)
    if rate == merged:
        return
    if rate > 1:
        msg = (
            f"the model's AR takes one step per {rate} frames (ar.layout.kind="
            f"{layout.kind}, rate {rate}) but the codec's first codebook is merged at "
            f"rate {merged} (codec.json merge_rates): encode the data with a merged codec of "
            f"merge_rates [{rate}, 1, ...] (e.g. prepare.sh --codec-spec "
            f"conf/codec_mel_rvq_merged.yaml), or set ar.layout.rate={merged}"
        )
        if strict:
            raise ValueError(msg)
        logger.warning("%s", msg)
        return
    logger.warning(
        "the codec's first codebook is merged at rate %d but the AR makes one step per frame "
        "(ar.layout.kind=%s): it works, at %d times the AR steps the codes need; for the "
        "half-rate AR (VALL-E R Sec 3.1) set ar.layout.kind=merged_first_codebook "
        "ar.layout.rate=%d (variant preset vallr_merged)",
        merged,
        layout.kind,
        merged,
        merged,
    )


def snap_durations(durations: Tensor, lens: Tensor, rate: int) -> Tensor:
    """Frames per phoneme (B, S) -> the frames per phoneme its windows imply (B, S): each
    phoneme's :func:`window_durations` times ``rate``, the row's last phoneme with frames
    ending at the row's last frame. Same windows (``window_durations`` of the result is that
    of the input), boundaries moved to window edges; the identity at ``rate`` 1.

    This is the per-frame alignment a half-rate AR can give the NAR at inference (its steps'
    phonemes, each repeated ``rate`` times), so the NAR trains on it too.
    """
    w = window_durations(durations, lens, rate)  # (B, S)
    if rate == 1:
        return w
    ends = torch.minimum(w.cumsum(-1) * rate, lens.long()[:, None])  # (B, S) frame ends
    return ends.diff(dim=-1, prepend=ends.new_zeros(ends.shape[0], 1))
