"""Stage conditioning: how the NAR knows which codebook it is predicting.

Shape legend: B batch, L sequence positions, D model width.

VALL-E (Sec 4.2.2) injects the stage with adaptive layer norm: every norm of the NAR
transformer is ``a * LayerNorm(h) + b`` with ``a, b`` from a learned stage embedding
(:class:`AdaLNStage`). VALL-E 2 (Sec 3.1) instead prepends a learned code-ID token to the
NAR input and keeps plain LayerNorm (:class:`CodeIdTokenStage`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from valle.modules.norms import AdaptiveLayerNorm, LayerNorm
from valle.modules.positions import CONDITION, SegmentPositions
from valle.modules.transformer import NormFactory

__all__ = ["StageConditioning", "AdaLNStage", "CodeIdTokenStage", "STAGE_CONDITIONINGS"]


class StageConditioning(nn.Module):
    """Base class: ``norm_factory`` for the backbone and ``forward`` to condition the inputs."""

    norm_factory: NormFactory

    def forward(
        self, x: Tensor, pos: SegmentPositions, stage: int
    ) -> tuple[Tensor, SegmentPositions, Tensor | None]:
        """Inputs (B, L, D) for predicting codebook ``stage`` (0-based, >= 1).

        Returns inputs (B, L', D) with their descriptors (prepended columns only, so the last
        columns stay the target) and the ``cond`` (B, D) handed to every norm, or None.
        """
        raise NotImplementedError


class AdaLNStage(StageConditioning):
    """A stage embedding drives AdaLN in every layer (VALL-E Sec 4.2.2)."""

    norm_factory = staticmethod(AdaptiveLayerNorm)

    def __init__(self, num_codebooks: int, d_model: int) -> None:
        super().__init__()
        self.num_codebooks = num_codebooks
        self.embedding = nn.Embedding(num_codebooks - 1, d_model)  # stages 1..Q-1

    def forward(
        self, x: Tensor, pos: SegmentPositions, stage: int
    ) -> tuple[Tensor, SegmentPositions, Tensor | None]:
        if not 1 <= stage < self.num_codebooks:
            raise ValueError(f"NAR stage must be in 1..{self.num_codebooks - 1}, got {stage}")
        ids = torch.full((x.shape[0],), stage - 1, dtype=torch.long, device=x.device)
        return x, pos, self.embedding(ids)  # cond (B, D)


class CodeIdTokenStage(StageConditioning):
    """A learned code-ID token per stage, prepended to the input; plain LayerNorm (VALL-E 2).

    VALL-E 2 Sec 3.3: ``e^j = W^id [j]`` and the NAR input is ``E^x || e_eos || E^c || e_eos
    || e^j`` with the position embeddings added to the text and the code segments only. The
    token here comes first instead of last and the segments are told apart by their own
    positional encodings instead of ``<eos>`` separators; with full attention and no
    positional encoding on the token, where it sits changes nothing.
    """

    norm_factory = staticmethod(LayerNorm)

    def __init__(self, num_codebooks: int, d_model: int) -> None:
        super().__init__()
        self.num_codebooks = num_codebooks
        self.embedding = nn.Embedding(num_codebooks - 1, d_model)  # stages 1..Q-1

    def forward(
        self, x: Tensor, pos: SegmentPositions, stage: int
    ) -> tuple[Tensor, SegmentPositions, Tensor | None]:
        if not 1 <= stage < self.num_codebooks:
            raise ValueError(f"NAR stage must be in 1..{self.num_codebooks - 1}, got {stage}")
        B = x.shape[0]
        ids = torch.full((B, 1), stage - 1, dtype=torch.long, device=x.device)
        token = SegmentPositions(
            torch.full_like(ids, CONDITION),
            torch.zeros_like(ids),
            torch.ones_like(ids, dtype=torch.bool),
        )
        return torch.cat([self.embedding(ids), x], dim=1), token.cat(pos), None  # (B, 1 + L, D)


STAGE_CONDITIONINGS: dict[str, type] = {"adaln": AdaLNStage, "code_id_token": CodeIdTokenStage}
