"""AR output heads; a head owns its loss and its sampling.

Shape legend: B batch, N steps, D model width, V classes, ``*E`` the layout's step shape
(``()`` for one code per step, ``(G,)`` for VALL-E 2's groups), t codes decoded so far.

A head maps hidden states (..., D) to its output (here logits (..., *E, V)); ``loss`` scores
that output against the layout's targets; ``start`` makes the decoding memory of one
generate call and ``sample`` draws one step (B, *E) from the output with a sampler. A
latent head (MELLE) has the same four methods over continuous frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from valle.config import ComponentConfig, opt, register_kind
from valle.modules.metrics import masked_token_loss
from valle.sampling.base import TokenSampler, check_logit_values

__all__ = ["ARHead", "CategoricalHead", "CategoricalHeadConfig", "CodeHistory", "HeadConfig"]

PAD_HISTORY = -1  # history entries before a row's prompt (never equal to a code)


class ARHead(Protocol):
    def __call__(self, h: Tensor) -> Tensor:
        """Hidden states (..., D) -> the head's output for those positions."""
        ...

    def loss(self, out: Tensor, targets: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Scalar loss over the masked targets and named metrics (including ``loss``)."""
        ...

    def start(self, prompt_steps: Tensor, prompt_lens: Tensor, steps: int) -> Any:
        """Decoding memory of a generate call that makes at most ``steps`` steps per row."""
        ...

    def sample(
        self, out: Tensor, memory: Any, sampler: Any, generator: torch.Generator | None
    ) -> Tensor:
        """Draw one step (B, *E) from the output (B, *E, ...) of the current step."""
        ...


class CodeHistory:
    """The codes a token sampler sees as ``history`` (B, t): each row's prompt codes then the
    codes drawn so far, in frame order, right-aligned so that the last column is every row's
    latest code; columns before a shorter row's prompt hold -1.

    Why the prompt is included: see :mod:`valle.sampling.repetition_aware` (VALL-E 2's
    Algorithm 1 continues the prompt's code sequence). One buffer is allocated per generate
    call; ``view`` and ``append`` copy nothing per step.
    """

    def __init__(self, prompt_steps: Tensor, prompt_lens: Tensor, steps: int) -> None:
        B = prompt_steps.shape[0]
        width = math.prod(prompt_steps.shape[2:])  # codes per step
        flat = prompt_steps.reshape(B, -1)  # (B, P' * width)
        H = flat.shape[1]
        codes = prompt_lens * width  # (B,) valid prompt codes per row
        col = torch.arange(H, device=flat.device) - (H - codes)[:, None]  # (B, H) source column
        prompt = torch.where(
            col >= 0, flat.gather(1, col.clamp(min=0)), torch.full_like(flat, PAD_HISTORY)
        )  # (B, H) right-aligned
        self.buffer = torch.full(
            (B, H + steps * width), PAD_HISTORY, dtype=torch.long, device=flat.device
        )
        self.buffer[:, :H] = prompt
        self.length = H
        self.checked = False  # logits values checked (once per generate call)

    def view(self) -> Tensor:
        """(B, t) the history so far (a view)."""
        return self.buffer[:, : self.length]

    def append(self, ids: Tensor) -> None:
        """Add one code per row (B,)."""
        self.buffer[:, self.length] = ids
        self.length += 1


def _table(embedding: nn.Module) -> Tensor:
    """An embedding module's id table (ids, width)."""
    weight = embedding.weight
    assert isinstance(weight, Tensor)
    return weight


class CategoricalHead(nn.Module):
    """Logits over ``num_classes`` (the codes plus EOS) for every element of a step; cross
    entropy loss. With ``step_shape=(G,)`` it is VALL-E 2's group prediction layer.

    ``tied``: the layout's input code embedding (a module with a ``weight`` of shape
    ``(ids, D)`` whose first ``num_classes`` rows are the classes). Tied, the logits of
    element e are ``g_e . W[:V]^T / sqrt(D) + b``: the output layer shares the code
    embedding, as in VALL-E and VALL-E 2 ("share the parameters of the code prediction layer
    with the parameters of the code embedding layer", VALL-E 2 Sec 3.2). For one code per
    step ``g = h``; for a group of ``|E| = G`` codes ``g`` is the group prediction layer's
    output, a linear map ``D -> G * D`` split into G vectors of width D (VALL-E 2 Sec 3.3: "a
    linear mapping group prediction layer and softmax code prediction layer"), the mirror of
    the group embedding's ``W^g`` (:class:`~valle.ar.layouts.GroupEmbedding`). The
    ``1/sqrt(D)`` scale (as T5 does for its tied output layer) keeps the initial logits near
    unit scale: the embedding is initialised N(0, 1) for the inputs, which unscaled would give
    logits of standard deviation sqrt(D) and a first loss many times ln V. Untied, a linear
    layer ``D -> |E| * V``.
    """

    def __init__(
        self,
        d_model: int,
        num_classes: int,
        step_shape: tuple[int, ...] = (),
        tied: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.step_shape = tuple(step_shape)
        width = math.prod(self.step_shape)
        self.group: nn.Linear | None = None  # the group prediction layer (D -> |E| * D)
        if tied is None:
            self.proj: nn.Linear | None = nn.Linear(d_model, width * num_classes)
        else:
            self.proj = None
            rows, dim = _table(tied).shape
            if dim != d_model or rows < num_classes:
                raise ValueError(
                    f"cannot tie a head of {width} x {num_classes} classes over d_model="
                    f"{d_model} to an embedding of shape {(rows, dim)} (it needs width d_model)"
                )
            if width > 1:
                self.group = nn.Linear(d_model, width * d_model, bias=False)
            self.bias = nn.Parameter(torch.zeros(num_classes))
            self.scale = dim**-0.5
        # not a submodule: the decoder owns (and saves) the embedding
        self._tied: list[nn.Module] = [] if tied is None else [tied]

    @property
    def tied(self) -> bool:
        return bool(self._tied)

    def forward(self, h: Tensor) -> Tensor:
        """(..., D) -> (..., *E, V)."""
        if self.proj is not None:
            return self.proj(h).unflatten(-1, (*self.step_shape, self.num_classes))
        weight = _table(self._tied[0])[: self.num_classes]  # (V, D)
        if self.group is not None:
            h = self.group(h)  # (..., |E| * D)
        parts = h.unflatten(-1, (*self.step_shape, weight.shape[1]))  # (..., *E, D)
        return F.linear(parts * self.scale, weight, self.bias)  # (..., *E, V)

    def loss(self, out: Tensor, targets: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """CE over the valid targets (B, N, *E); metrics ``loss``, ``acc``, ``top10_acc``."""
        return masked_token_loss(out, targets, mask)

    def start(self, prompt_steps: Tensor, prompt_lens: Tensor, steps: int) -> CodeHistory:
        return CodeHistory(prompt_steps, prompt_lens, steps)

    def sample(
        self,
        out: Tensor,
        memory: CodeHistory,
        sampler: TokenSampler,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Draw the step's elements in order, each seeing the ones drawn before it.

        The first call of a generate call checks the logits' values (NaN, a row with no
        finite logit) once: one host sync per call, not per step or element.
        """
        if not memory.checked:
            check_logit_values(out)
            memory.checked = True
        B = out.shape[0]
        flat = out.reshape(B, -1, self.num_classes)  # (B, |E|, V)
        width = flat.shape[1]
        for e in range(width):
            memory.append(sampler(flat[:, e], memory.view(), generator))
        return memory.view()[:, -width:].reshape(B, *self.step_shape)  # (B, *E)


@dataclass(frozen=True)
class HeadConfig(ComponentConfig):
    """An AR head's settings, chosen by ``kind`` (categorical).

    ``moves_pointer``: besides the step's codes the head predicts a phoneme-pointer move
    (VALL-E R's stay/advance), which a phoneme-aligned decoder needs; variants read it instead
    of asking for the kind."""

    __kinds__: ClassVar[dict[str, type]] = {}
    moves_pointer: ClassVar[bool] = False

    def build(self, d_model: int, layout: Any, embedding: nn.Module) -> ARHead:
        raise NotImplementedError


@register_kind("categorical")
@dataclass(frozen=True)
class CategoricalHeadConfig(HeadConfig):
    """Classes over the layout's codes + EOS, one set per step element."""

    kind: str = opt("categorical", "AR output head: categorical")
    tie_embedding: bool = opt(
        True,
        "share the output layer with the acoustic input embedding (VALL-E, VALL-E 2; "
        "false: a separate linear layer, as in checkpoints made before this option)",
    )

    def build(self, d_model: int, layout: Any, embedding: nn.Module) -> ARHead:
        return CategoricalHead(
            d_model,
            layout.num_classes,
            layout.step_shape,
            tied=embedding if self.tie_embedding else None,
        )
