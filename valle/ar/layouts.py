"""Acoustic layouts: what one AR step is, its BOS, its training targets and loss mask.

Shape legend: B batch, T frames, Q codebooks, N steps, G frames per step, D model width,
``*E`` the step's element shape (``()`` for one code, ``(G,)`` for a group).

VALL-E's AR predicts the first codebook, one frame per step (Sec 4.2.1):
:class:`FirstCodebookLayout`. VALL-E 2's grouped code modeling (Sec 3.1) predicts G frames'
first-codebook codes per step: :class:`GroupedCodeLayout`, with a group embedding in (the G
code embeddings concatenated, then projected to the model width: :class:`GroupEmbedding`) and
a group prediction layer out (:class:`~valle.ar.heads.CategoricalHead` with step shape
``(G,)``). VALL-E R's codec merging (Sec 3.1) makes codebook 1 constant on windows of m frames,
and its AR predicts one code per window: :class:`MergedFirstCodebookLayout`. A layout owns the input embedding of its steps, the BOS input and the
end-of-sequence target; the decoder never sees a token id.

The code layouts here are discrete: step elements are ids in ``[0, codebook_size)``, the
head's classes are the codes plus EOS (``eos_id = codebook_size``) and the inputs add BOS
(``bos_id = codebook_size + 1``). A continuous-frame layout (MELLE) gives its own BOS frame
and targets the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from valle.config import ComponentConfig, ConfigError, opt, register_kind
from valle.modules.embedding import TokenEmbedding

__all__ = [
    "ARTargets",
    "AcousticLayout",
    "FirstCodebookLayout",
    "FirstCodebookLayoutConfig",
    "GroupEmbedding",
    "GroupedCodeLayout",
    "GroupedLayoutConfig",
    "LayoutConfig",
    "MergedFirstCodebookLayout",
    "MergedFirstCodebookLayoutConfig",
]


class ARTargets(NamedTuple):
    """Teacher-forcing tensors of a batch: inputs ``[BOS, s_1 .. s_N]``, targets
    ``[s_1 .. s_N, end]`` and the mask of the scored target elements."""

    inputs: Tensor  # (B, N+1, *E) step inputs, BOS first
    lens: Tensor  # (B,) valid inputs per row (steps + 1)
    targets: Tensor  # (B, N+1, *E)
    mask: Tensor  # (B, N+1, *E) bool


class AcousticLayout(Protocol):
    frames_per_step: int
    step_shape: tuple[int, ...]
    continuous: bool  # steps are real-valued frames (MELLE's mels), not code ids

    def to_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Frames (B, T, Q) with lengths (B,) -> whole steps (B, N, *E), step counts (B,) and
        the (B, N, *E) bool mask of the real elements.

        The steps of a row end at its last frame, so a prompt's steps are continued
        seamlessly by generation: a grouped layout drops at the start the frames that do not
        fill a step; a merged layout counts a last partial window as one step.
        """
        ...

    def with_bos(self, steps: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """``[BOS, s_1 .. s_N]`` (B, N+1, *E) and lengths + 1."""
        ...

    def teacher_forcing(self, codes: Tensor, lens: Tensor) -> ARTargets:
        """Inputs, targets and loss mask of a batch of frames (B, T, Q)."""
        ...

    def from_steps(self, steps: Tensor) -> Tensor:
        """One item's steps (N, *E) -> the frames they fix (N * G, Q_ar)."""
        ...

    def max_steps(self, frames: Tensor) -> Tensor:
        """Steps (B,) that make at least ``frames`` (B,) frames."""
        ...

    def embedding(self, d_model: int) -> nn.Module:
        """A module embedding step inputs (B, N, *E) -> (B, N, D)."""
        ...


def _check_codes(codes: Tensor) -> None:
    if codes.dim() != 3:
        raise ValueError(f"expected codes (B, T, Q), got shape {tuple(codes.shape)}")


class _CodeLayout:
    """Shared parts of the discrete first-codebook layouts (ids, BOS, EOS targets)."""

    frames_per_step: int
    step_shape: tuple[int, ...]
    continuous = False  # steps are code ids
    one_code_per_window = False  # see LayoutConfig.one_code_per_window

    def __init__(self, codebook_size: int) -> None:
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        self.codebook_size = codebook_size
        self.eos_id = codebook_size  # head class and input id
        self.bos_id = codebook_size + 1  # input id only
        self.num_classes = codebook_size + 1  # the head's classes: codes + EOS
        self.num_ids = codebook_size + 2  # the embedding's rows: codes + EOS + BOS

    def to_steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        steps, n = self._steps(codes, lens)  # (B, N, *E), (B,)
        valid = torch.arange(steps.shape[1], device=n.device) < n[:, None]  # (B, N)
        valid = valid.view(*valid.shape, *(1,) * len(self.step_shape)).expand(steps.shape)
        return steps, n, valid

    def _steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def with_bos(self, steps: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        bos = steps.new_full((steps.shape[0], 1, *steps.shape[2:]), self.bos_id)  # (B, 1, *E)
        return torch.cat([bos, steps], dim=1), lens + 1

    def teacher_forcing(self, codes: Tensor, lens: Tensor) -> ARTargets:
        """Next-code targets with EOS after the last step (VALL-E Sec 4.2.1)."""
        steps, n = self._steps(codes, lens)  # (B, N, *E), (B,)
        inputs, in_lens = self.with_bos(steps, n)  # (B, N+1, *E)
        rows = torch.arange(steps.shape[0], device=n.device)
        end = steps.new_zeros(steps.shape[0], 1, *steps.shape[2:])  # (B, 1, *E)
        targets = torch.cat([steps, end], dim=1)  # (B, N+1, *E)
        targets[rows, n] = self.eos_id  # the step after the last is EOS
        scored = torch.arange(inputs.shape[1], device=n.device) <= n[:, None]  # (B, N+1)
        mask = scored.view(*scored.shape, *(1,) * len(self.step_shape)).expand(targets.shape)
        return ARTargets(inputs, in_lens, targets, mask)

    def max_steps(self, frames: Tensor) -> Tensor:
        G = self.frames_per_step
        return (frames + G - 1) // G


KIND_HELP = (
    "acoustic layout (what one AR step is): first_codebook | grouped | merged_first_codebook"
)


@dataclass(frozen=True)
class LayoutConfig(ComponentConfig):
    """An acoustic layout's settings, chosen by ``kind`` (first_codebook | grouped |
    merged_first_codebook).

    ``one_code_per_window``: each AR step is the one codebook-1 code of a window of ``rate``
    frames (1 frame without a ``rate``), so the codec's first codebook must be merged at
    that rate (:func:`valle.ar.windows.check_merge_rate` reads it); False for a step of
    several codes (a group of frames)."""

    __kinds__: ClassVar[dict[str, type]] = {}
    one_code_per_window: ClassVar[bool] = False

    def build(self, codebook_size: int) -> AcousticLayout:
        raise NotImplementedError


class FirstCodebookLayout(_CodeLayout):
    """One step = the first-codebook code of one frame."""

    frames_per_step = 1
    one_code_per_window = True
    step_shape: tuple[int, ...] = ()

    def _steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        _check_codes(codes)
        return codes[..., 0], lens  # (B, T)

    def from_steps(self, steps: Tensor) -> Tensor:
        return steps.unsqueeze(-1)  # (T, 1)

    def embedding(self, d_model: int) -> nn.Module:
        return TokenEmbedding(self.num_ids, d_model)


@register_kind("first_codebook")
@dataclass(frozen=True)
class FirstCodebookLayoutConfig(LayoutConfig):
    """One first-codebook code per AR step (VALL-E)."""

    one_code_per_window: ClassVar[bool] = True
    kind: str = opt("first_codebook", KIND_HELP)

    def build(self, codebook_size: int) -> AcousticLayout:
        return FirstCodebookLayout(codebook_size)


class GroupEmbedding(nn.Module):
    """VALL-E 2's group embedding layer: (B, N, G) code ids -> (B, N, D).

    The paper (Sec 3.3, AR model training) embeds every code with the code embedding matrix
    ``W^c`` (width D, the matrix the code prediction layer shares), "partition[s] the code
    embedding sequence into groups of size G, concatenate[s] each group of the code
    embeddings in the hidden dimension, and obtain[s] the group embedding sequence [...]
    using the group embedding matrix ``W^g``": ``e^g_t = [e^c_{tG}; ...; e^c_{tG+G-1}] W^g``
    with ``W^g`` of shape (G*D, D), no bias. So each code keeps a full-width embedding and a
    learned linear layer mixes the G of them; an earlier form here gave each code a D/G-wide
    slice and concatenated the slices (no ``W^g``), which ties every position of a group to
    its own quarter of the channels and cannot share one code table with a full-width output
    layer. At G = 1 ``W^g`` would be one extra D x D matrix that VALL-E does not have, so
    :meth:`GroupedCodeLayout.embedding` uses the plain code embedding there and G = 1 is
    exactly VALL-E's AR (same parameters, same outputs; tests/variants/test_valle2.py).
    """

    def __init__(self, num_ids: int, d_model: int, group: int) -> None:
        super().__init__()
        if group < 2:
            raise ValueError(
                f"a group embedding needs G >= 2 (G = 1 is a code embedding), got {group}"
            )
        self.group = group
        self.codes = TokenEmbedding(num_ids, d_model)  # W^c (ids, D)
        self.project = nn.Linear(group * d_model, d_model, bias=False)  # W^g (G*D -> D)

    @property
    def weight(self) -> Tensor:
        """The code table ``W^c`` (num_ids, D) (what a tied head projects onto)."""
        return self.codes.weight

    def forward(self, ids: Tensor) -> Tensor:
        e = self.codes(ids)  # (B, N, G, D)
        return self.project(e.flatten(-2))  # (B, N, G*D) -> (B, N, D)


class GroupedCodeLayout(_CodeLayout):
    """One step = the first-codebook codes of G consecutive frames (VALL-E 2 Sec 3.1).

    VALL-E 2 makes the sequence length a multiple of G by dropping frames at the *start*
    (``T mod G`` of them), so every group is whole and no step holds untrained padding. The
    same rule serves prompts: a prompt of P frames gives the groups of its last
    ``P - P mod G`` frames, which end exactly where the continuation begins, so the seam
    neither loses nor repeats a frame (the NAR places the continuation after all P frames).
    A step is (G,) codes; at G = 1 it is one code (step shape ``()``), the code embedding has
    no ``W^g`` and the head no group prediction layer: exactly VALL-E's AR.
    """

    step_shape: tuple[int, ...]

    def __init__(self, codebook_size: int, group: int = 2) -> None:
        super().__init__(codebook_size)
        if group < 1:
            raise ValueError(f"group size must be >= 1, got {group}")
        self.frames_per_step = group
        self.step_shape = (group,) if group > 1 else ()

    def _steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        _check_codes(codes)
        G = self.frames_per_step
        B, T, _ = codes.shape
        n = lens // G  # (B,) whole groups per row
        N = T // G
        skip = lens - n * G  # (B,) frames dropped at the start of each row
        frame = skip[:, None] + torch.arange(N * G, device=lens.device)  # (B, N*G)
        first = codes[..., 0].gather(1, frame.clamp(max=max(T - 1, 0)))  # (B, N*G)
        return first.view(B, N, *self.step_shape), n  # (B, N, G), or (B, N) at G = 1

    def from_steps(self, steps: Tensor) -> Tensor:
        return steps.reshape(-1, 1)  # (N * G, 1)

    def embedding(self, d_model: int) -> nn.Module:
        """:class:`GroupEmbedding`; at G = 1 the code embedding itself (VALL-E's, no ``W^g``)."""
        if self.frames_per_step == 1:
            return TokenEmbedding(self.num_ids, d_model)
        return GroupEmbedding(self.num_ids, d_model, self.frames_per_step)


@register_kind("grouped")
@dataclass(frozen=True)
class GroupedLayoutConfig(LayoutConfig):
    """G frames' first-codebook codes per AR step (VALL-E 2 grouped code modeling)."""

    kind: str = opt("grouped", KIND_HELP)
    group: int = opt(2, "frames per AR step G (count, >= 1; VALL-E 2 uses 1, 2, 4, 8)")

    def __post_init__(self) -> None:
        if self.group < 1:
            raise ConfigError(f"layout.group must be >= 1, got {self.group}")

    def build(self, codebook_size: int) -> AcousticLayout:
        return GroupedCodeLayout(codebook_size, self.group)


class MergedFirstCodebookLayout(FirstCodebookLayout):
    """One step = the codebook-1 code of one window of ``rate`` = m frames (VALL-E R Sec 3.1).

    Codec merging (:mod:`valle.codec.merging`, ``merge_rates[0] = m``) makes codebook 1
    constant on the windows ``[k m, (k+1) m)`` counted from a row's first frame, so the AR
    predicts one code per window, m times fewer steps than :class:`FirstCodebookLayout`:

    - steps: codebook 1 at frames ``0, m, 2m, ...``; a row of T frames gives
      ``ceil(T / m)`` steps (the last, partial window counts as one step, so the steps end
      at the row's last frame);
    - frames: each step's code repeated m times (:meth:`from_steps`), ``m * N`` frames for N
      steps; ``frames`` cuts them to the count the windows cover when it is known (T, for a
      row of T frames; the sum of forced durations at inference). When it is not known (free
      generation) the continuation has ``m * N`` frames.

    The prompt/continuation seam: a prompt of P frames gives ``ceil(P / m)`` steps, its
    partial last window (``P mod m`` frames) one step, as an utterance's last window in
    training; every prompt frame is kept and the continuation's frames follow frame P, so
    no frame is lost or repeated. When P is a multiple of m (a prompt cut at a window
    boundary) prompt + continuation are exactly the windows of one merged utterance.
    At ``rate`` 1 this is :class:`FirstCodebookLayout` (same steps, frames and embedding).
    """

    def __init__(self, codebook_size: int, rate: int = 2) -> None:
        super().__init__(codebook_size)
        if rate < 1:
            raise ValueError(f"the merge rate (frames per AR step) must be >= 1, got {rate}")
        self.frames_per_step = rate

    @property
    def rate(self) -> int:
        """m, frames per window (= per AR step)."""
        return self.frames_per_step

    def _steps(self, codes: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        _check_codes(codes)
        m = self.frames_per_step
        return codes[:, ::m, 0], self.max_steps(lens)  # (B, ceil(T/m)), (B,)

    def from_steps(self, steps: Tensor, frames: int | None = None) -> Tensor:
        """Steps (N,) -> frames (m N, 1), or the first ``frames`` of them."""
        return steps.repeat_interleave(self.frames_per_step, dim=0)[:frames].unsqueeze(-1)


@register_kind("merged_first_codebook")
@dataclass(frozen=True)
class MergedFirstCodebookLayoutConfig(LayoutConfig):
    """One codebook-1 code per window of ``rate`` frames (VALL-E R on merged codes)."""

    one_code_per_window: ClassVar[bool] = True
    kind: str = opt("merged_first_codebook", KIND_HELP)
    rate: int = opt(
        2,
        "frames per AR step m_1 = the codec's first-codebook merge rate (count, >= 1; VALL-E R: 2)",
    )

    def __post_init__(self) -> None:
        if self.rate < 1:
            raise ConfigError(f"layout.rate must be >= 1, got {self.rate}")

    def build(self, codebook_size: int) -> AcousticLayout:
        return MergedFirstCodebookLayout(codebook_size, self.rate)
